#!/usr/bin/python3
"""Independent check of herald's composed messages with Python's email package.

Usage: check_messages.py DIR [DIR...]

Every NAME.eml in each DIR is checked against NAME.json, written by the C++ test from the
message's inputs (tests/mime/composer_test.cc, ExpectationJson):

  - form: CRLF line ends only, no line over 998 octets, header lines within max_header_line,
    ASCII only unless an address needs SMTPUTF8 (RFC 6532);
  - parsing: no defects on the message, any part, or any header of any part (policy.default,
    which registers defects, plus a parse with raise_on_defect=True for ASCII messages);
  - headers: exactly the expected fields in the expected order, and each decodes back to the
    original Unicode (unstructured text, display name and address, date, content type);
  - structure: the tree of content types;
  - bodies: the text/plain and text/html parts decode to the rendered text;
  - attachments: file name, content type and SHA-256 of the decoded bytes (for a 7bit
    message/rfc822 part, of the part's raw body).

Prints one line per problem and "checked N messages"; exits 1 if any problem was found.
Needs only the standard library (run with Debian's /usr/bin/python3).
"""

import email
import email.header
import email.policy
import hashlib
import json
import pathlib
import re
import sys

POLICY = email.policy.default
STRICT = email.policy.default.clone(raise_on_defect=True)


def leaves(part):
    """The parts of a message without descending into attached messages."""
    if part.get_content_maintype() == "multipart":
        for sub in part.get_payload():
            yield from leaves(sub)
    else:
        yield part


def structure(part):
    if part.get_content_maintype() == "multipart":
        return "%s(%s)" % (part.get_content_type(), ",".join(structure(p) for p in part.get_payload()))
    return part.get_content_type()


def all_parts(part):
    """Every part, including those of attached messages."""
    yield part
    if part.is_multipart():
        for sub in part.get_payload():
            yield from all_parts(sub)


def raw_part_bodies(raw, boundary):
    """(headers, body) of each part of a multipart body, split at the raw delimiters (RFC 2046
    §5.1.1: the CRLF before a delimiter belongs to it)."""
    delimiter = b"\r\n--" + boundary.encode("ascii")
    chunks = raw.split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:]  # the CRLF ending the delimiter line
        headers, _, body = chunk.partition(b"\r\n\r\n")
        yield headers, body


WHITESPACE = re.compile(r"[ \t]+")


def check_display_name(raw_value, parsed, want):
    """Returns None if the display name in `raw_value` (the field's raw text) decodes to `want`,
    else what it decoded to.

    Python's modern parser is used where it follows the RFCs. Two deviations are accounted for:
    it reads whitespace inside a phrase as one space (also inside an encoded word), so a phrase
    with at most one encoded word is compared with runs of blanks collapsed; and it keeps the
    blank between two adjacent encoded words in a phrase, against RFC 2047 §6.2 (CPython
    gh-128110, fixed after 3.13), so a phrase of several encoded words is decoded with the
    legacy email.header decoder, which drops it.
    """
    phrase = re.sub(r"\r\n", "", raw_value)
    phrase = phrase[:phrase.rfind("<")].strip(" \t") if "<" in phrase else ""
    encoded_words = len(re.findall(r"=\?[^?]+\?[QqBb]\?[^?]*\?=", phrase))
    if encoded_words > 1:
        got = str(email.header.make_header(email.header.decode_header(phrase)))
        return None if got == want else got
    if encoded_words == 1:
        return None if parsed == WHITESPACE.sub(" ", want) else parsed
    return None if parsed == want else parsed


def check(eml_path, problems):
    def problem(text):
        problems.append("%s: %s" % (eml_path.name, text))

    raw = eml_path.read_bytes()
    expected = json.loads(eml_path.with_suffix(".json").read_text(encoding="utf-8"))

    # Form.
    if b"\r\n" not in raw or raw.replace(b"\r\n", b"").find(b"\n") >= 0 or raw.replace(b"\r\n", b"").find(b"\r") >= 0:
        problem("line ends other than CRLF")
    if not raw.endswith(b"\r\n"):
        problem("does not end with CRLF")
    header_block, _, _ = raw.partition(b"\r\n\r\n")
    for number, line in enumerate(raw.split(b"\r\n"), 1):
        if len(line) > 998:
            problem("line %d has %d octets" % (number, len(line)))
    for line in header_block.split(b"\r\n"):
        if len(line) > expected["max_header_line"]:
            problem("header line longer than %d: %r" % (expected["max_header_line"], line[:100]))
    try:
        raw.decode("ascii")
        ascii_only = True
    except UnicodeDecodeError:
        ascii_only = False
    if not ascii_only and not expected["smtputf8"]:
        problem("8-bit bytes in a message that needs no SMTPUTF8")

    # Parsing.
    if ascii_only:
        msg = email.message_from_bytes(raw, policy=POLICY)
        try:
            email.message_from_bytes(raw, policy=STRICT)
        except Exception as error:  # noqa: BLE001 - any failure of the strict parse is a finding
            problem("strict parse failed: %r" % error)
    else:
        msg = email.message_from_string(raw.decode("utf-8"), policy=POLICY)
    for part in all_parts(msg):
        if part.defects:
            problem("defects in %s: %r" % (part.get_content_type(), part.defects))
        for name, value in part.items():
            defects = [d for d in value.defects
                       # Python does not implement RFC 6532 local parts; herald writes them on purpose.
                       if not (expected["smtputf8"] and type(d).__name__ == "NonASCIILocalPartDefect")]
            if defects:
                problem("defects in header %s: %r" % (name, defects))

    # Headers: exactly these, in this order.
    raw_values = dict(msg.raw_items())
    got = list(msg.items())
    got_names = [name for name, _ in got]
    want_names = [h["name"] for h in expected["headers"]]
    if got_names != want_names:
        problem("headers %r, expected %r" % (got_names, want_names))
    else:
        for (name, value), want in zip(got, expected["headers"]):
            if "text" in want and str(value) != want["text"]:
                problem("%s is %r, expected %r" % (name, str(value), want["text"]))
            if "date" in want and value.datetime.isoformat() != want["date"]:
                problem("%s is %r, expected %r" % (name, value.datetime.isoformat(), want["date"]))
            if "address" in want:
                addresses = value.addresses
                if len(addresses) != 1:
                    problem("%s has %d addresses: %r" % (name, len(addresses), str(value)))
                    continue
                if addresses[0].addr_spec != want["address"]:
                    problem("%s address is %r, expected %r" % (name, addresses[0].addr_spec, want["address"]))
                display_name = check_display_name(raw_values[name], addresses[0].display_name, want["display_name"])
                if display_name is not None:
                    problem("%s display name is %r, expected %r" % (name, display_name, want["display_name"]))
            if "content_type" in want and value.content_type != want["content_type"]:
                problem("%s is %r, expected %r" % (name, value.content_type, want["content_type"]))

    if structure(msg) != expected["structure"]:
        problem("structure %s, expected %s" % (structure(msg), expected["structure"]))

    # Bodies.
    parts = list(leaves(msg))
    for subtype in ("plain", "html"):
        want = expected["text" if subtype == "plain" else "html"]
        bodies = [p for p in parts if p.get_content_type() == "text/" + subtype and not p.is_attachment()]
        if want is None:
            if bodies:
                problem("unexpected text/%s part" % subtype)
            continue
        if len(bodies) != 1:
            problem("%d text/%s parts, expected 1" % (len(bodies), subtype))
            continue
        body = bodies[0]
        if body.get_content_charset() != "utf-8" or body["Content-Transfer-Encoding"] != "quoted-printable":
            problem("text/%s part is %s, %s" % (subtype, body.get_content_charset(), body["Content-Transfer-Encoding"]))
        content = body.get_content()
        if content != want:
            problem("text/%s decodes to %r, expected %r" % (subtype, content[:300], want[:300]))

    # Attachments.
    attachments = [p for p in parts if p.is_attachment()]
    if len(attachments) != len(expected["attachments"]):
        problem("%d attachments, expected %d" % (len(attachments), len(expected["attachments"])))
    else:
        raw_parts = list(raw_part_bodies(raw, msg.get_boundary())) if msg.is_multipart() else []
        for index, (part, want) in enumerate(zip(attachments, expected["attachments"])):
            if part.get_filename() != want["filename"]:
                problem("attachment %d is named %r, expected %r" % (index, part.get_filename(), want["filename"]))
            if part.get_content_type() != want["content_type"]:
                problem("attachment %d is %s, expected %s" % (index, part.get_content_type(), want["content_type"]))
            if want["seven_bit"]:
                if part["Content-Transfer-Encoding"] != "7bit":
                    problem("attachment %d is not 7bit" % index)
                # The raw body of the part: attachments follow the one body part of multipart/mixed.
                data = raw_parts[index + 1][1]
            else:
                if part["Content-Transfer-Encoding"] != "base64":
                    problem("attachment %d is not base64" % index)
                data = part.get_payload(decode=True)
            if hashlib.sha256(data).hexdigest() != want["sha256"]:
                problem("attachment %d (%s) decodes to other bytes" % (index, want["filename"]))


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    problems = []
    checked = 0
    for directory in argv[1:]:
        for eml in sorted(pathlib.Path(directory).glob("*.eml")):
            try:
                check(eml, problems)
            except Exception as error:  # noqa: BLE001 - report and continue with the next message
                problems.append("%s: check failed: %r" % (eml.name, error))
            checked += 1
    for line in problems:
        print(line)
    print("checked %d messages, %d problems" % (checked, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
