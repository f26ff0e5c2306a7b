#include "mime/composer.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <random>
#include <sstream>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include "address/address.h"
#include "core/text.h"
#include "mime/mime_test_util.h"

// Counts allocations made by the current thread while enabled, to check that Compose() does not
// allocate once its buffers have grown.
namespace {
thread_local bool g_count_allocations = false;
thread_local std::size_t g_allocations = 0;
}  // namespace

// Not inlined: GCC 12 otherwise pairs the malloc/free inside with new/delete at call sites and
// warns (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t size) {
  if (g_count_allocations) ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace herald {
namespace {

namespace fs = std::filesystem;
using mime_test::JsonString;
using mime_test::NormaliseLineBreaks;

constexpr std::string_view kMessageId = "20250304090503.4f2a@mail.shop.example";

TimePoint FixedDate() {
  using namespace std::chrono;
  return TimePoint(sys_days(2025y / March / 4) + 9h + 5min + 3s);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteFile(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    char buffer[3];
    std::snprintf(buffer, sizeof buffer, "%02x", digest[i]);
    hex += buffer;
  }
  return hex;
}

Address MustAddress(std::string_view text) {
  Result<Address> address = ParseAddress(text);
  EXPECT_TRUE(address.ok()) << text << ": " << address.status().ToString();
  return address.ok() ? *address : Address{};
}

fs::path DataDirPath() { return fs::temp_directory_path() / ("herald_mime_test_" + std::to_string(::getpid())); }

// Removes the data directory when the test program ends.
class DataDirCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(DataDirPath(), ignored);
  }
};
[[maybe_unused]] ::testing::Environment* const kDataDirCleanup =
    ::testing::AddGlobalTestEnvironment(new DataDirCleanup);

// Attachment files with fixed content, written once per test run.
const fs::path& DataDir() {
  static const fs::path dir = [] {
    fs::path path = DataDirPath();
    fs::create_directories(path);
    std::string pdf = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    std::string all_bytes;
    for (int round = 0; round < 3; ++round) {
      for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
    }
    std::string png = "\x89PNG\r\n\x1A\n";
    for (int i = 0; i < 500; ++i) png.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
    std::string eml =
        "From: Anna <anna@example.com>\nTo: shop@shop.example\nSubject: Question about my order\n"
        "Date: Mon, 03 Mar 2025 10:00:00 +0000\nMessage-ID: <q1@example.com>\n\nHello,\n.\nFrom me: where is it?\n";
    std::string binary_eml = "Subject: 8bit\n\nGr\xC3\xBC\xC3\x9F" "e\n";
    for (const auto& [name, bytes] : std::initializer_list<std::pair<const char*, std::string>>{
             {"invoice.pdf", pdf},
             {"all_bytes.bin", all_bytes},
             {"photo.png", png},
             {"question.eml", eml},
             {"binary.eml", binary_eml},
             {"data.docx", "PK\x03\x04 not really a docx"},
         }) {
      std::ofstream(path / name, std::ios::binary) << bytes;
    }
    return path;
  }();
  return dir;
}

struct ExpectedAttachment {
  AttachmentSpec spec;
  std::string content_type;  // as the recipient sees it
  bool seven_bit = false;
};

// One message to compose: the task's settings and one recipient.
struct Case {
  std::string name;
  std::vector<std::string> columns = {"email", "firstname", "lastname"};
  std::vector<std::string> values = {"anna@example.com", "Anna", "Schmidt"};
  std::string to = "anna@example.com";
  std::string task_title = "Spring newsletter";
  std::string from = "news@shop.example";
  std::optional<std::string> from_name = "Shop Team";
  std::optional<std::string> reply_to;
  std::optional<std::string> to_name = "{%firstname%} {%lastname%}";
  std::string subject = "Hello {%firstname%}";
  std::optional<std::string> text_body = "Dear {%firstname%},\n\nthank you.\n";
  std::optional<std::string> html_body;
  // Without a text body: the text part herald must make from the HTML, written here by hand as a
  // template (values in it are not HTML-escaped).
  std::optional<std::string> text_from_html;
  std::vector<ExpectedAttachment> attachments;
  std::vector<std::pair<std::string, std::string>> extra_headers;
  Sensitivity sensitivity = Sensitivity::kNormal;
  std::optional<AccountOverrides> account;
  std::size_t max_header_line = 78;
};

Result<Template> Compile(std::string_view text, const FieldSet& fields, std::string_view origin) {
  return Template::Compile(text, fields, origin);
}

Result<std::shared_ptr<const MessageComposer>> CreateComposer(const Case& c) {
  FieldSet fields(c.columns);
  ComposerSpec spec;
  spec.task_title = c.task_title;
  spec.from_address = MustAddress(c.from);
  auto compile = [&](const std::string& text, std::string_view origin) {
    Result<Template> compiled = Compile(text, fields, origin);
    EXPECT_TRUE(compiled.ok()) << compiled.status().ToString();
    return compiled.ok() ? *compiled : Template();
  };
  if (c.from_name) spec.from_name = compile(*c.from_name, "from name");
  if (c.reply_to) {
    Result<Mailbox> mailbox = ParseMailbox(*c.reply_to);
    EXPECT_TRUE(mailbox.ok()) << mailbox.status().ToString();
    if (mailbox.ok()) spec.reply_to = *mailbox;
  }
  if (c.to_name) spec.to_name = compile(*c.to_name, "to name");
  spec.subject = compile(c.subject, "subject");
  if (c.text_body) spec.text_body = compile(*c.text_body, "text body");
  if (c.html_body) spec.html_body = compile(*c.html_body, "html body");
  for (const ExpectedAttachment& attachment : c.attachments) spec.attachments.push_back(attachment.spec);
  for (const auto& [name, value] : c.extra_headers) spec.extra_headers.push_back({name, compile(value, name)});
  spec.sensitivity = c.sensitivity;
  return MessageComposer::Create(std::move(spec), std::move(fields));
}

struct Composed {
  Status status;
  std::string message;
};

Composed ComposeWith(const MessageComposer& composer, const Case& c) {
  Address to = MustAddress(c.to);
  std::vector<std::string_view> values(c.values.begin(), c.values.end());
  RecipientParts recipient;
  recipient.column_values = values;
  recipient.to = &to;
  recipient.message_id = kMessageId;
  recipient.date = FixedDate();
  recipient.account = c.account ? &*c.account : nullptr;
  MessageData data;
  data.Append("left over from an earlier message");
  Composed composed;
  composed.status = composer.Compose(recipient, data);
  composed.message = data.ToString();
  return composed;
}

Composed ComposeCase(const Case& c) {
  Result<std::shared_ptr<const MessageComposer>> composer = CreateComposer(c);
  if (!composer.ok()) return {composer.status(), ""};
  return ComposeWith(**composer, c);
}

// The expectation file for tests/mime/check_messages.py, computed from the case's inputs without
// the composer: the headers a parser must find (all of them, in order), the decoded bodies,
// and the attachments' names, types and SHA-256.
std::string ExpectationJson(const Case& c) {
  FieldSet fields(c.columns);
  Address to = MustAddress(c.to);
  std::string recipient = to.ToString();
  std::vector<std::string_view> values(c.values.begin(), c.values.end());
  values.resize(fields.size());
  values[fields.task_title_index()] = c.task_title;
  values[fields.recipient_index()] = recipient;
  auto render = [&](const std::string& text, Escaping escaping) {
    std::string out;
    Result<Template> compiled = Compile(text, fields, "expectation");
    if (compiled.ok()) compiled->Render(values, escaping, out);
    return out;
  };
  std::string subject = render(c.subject, Escaping::kNone);
  values[fields.subject_index()] = subject;

  const AccountOverrides* account = c.account ? &*c.account : nullptr;
  std::string from_name = c.from_name ? std::string(TrimBlanks(render(*c.from_name, Escaping::kNone))) : "";
  if (from_name.empty() && account != nullptr) from_name = account->default_sender_name;
  std::string from = c.from;
  if (account != nullptr && account->fixed_sender && c.sensitivity != Sensitivity::kPrivate) {
    from = account->fixed_sender->ToString();
  }
  std::optional<Mailbox> reply_to;
  if (c.reply_to) {
    reply_to = *ParseMailbox(*c.reply_to);
  } else if (account != nullptr && account->default_reply_to) {
    reply_to = *account->default_reply_to;
  }
  std::string to_name = c.to_name ? std::string(TrimBlanks(render(*c.to_name, Escaping::kNone))) : "";

  const std::optional<std::string>& text_body = c.text_body ? c.text_body : c.text_from_html;
  const bool both = text_body && c.html_body;
  std::string body_structure =
      both ? "multipart/alternative(text/plain,text/html)" : (text_body ? "text/plain" : "text/html");
  std::string structure = body_structure;
  if (!c.attachments.empty()) {
    structure = "multipart/mixed(" + body_structure;
    for (const ExpectedAttachment& attachment : c.attachments) structure += "," + attachment.content_type;
    structure += ")";
  }

  std::vector<std::string> headers;
  auto text_header = [&](std::string_view name, std::string_view text) {
    headers.push_back("{\"name\": " + JsonString(name) + ", \"text\": " + JsonString(text) + "}");
  };
  auto address_header = [&](std::string_view name, std::string_view display_name, std::string_view address) {
    headers.push_back("{\"name\": " + JsonString(name) + ", \"display_name\": " + JsonString(display_name) +
                      ", \"address\": " + JsonString(address) + "}");
  };
  headers.push_back("{\"name\": \"Date\", \"date\": \"2025-03-04T09:05:03+00:00\"}");
  address_header("From", from_name, from);
  if (reply_to) address_header("Reply-To", TrimBlanks(reply_to->display_name), reply_to->address.ToString());
  address_header("To", to_name, recipient);
  text_header("Subject", TrimBlanks(subject));
  text_header("Message-ID", "<" + std::string(kMessageId) + ">");
  text_header("MIME-Version", "1.0");
  switch (c.sensitivity) {
    case Sensitivity::kNormal: break;
    case Sensitivity::kPersonal: text_header("Sensitivity", "Personal"); break;
    case Sensitivity::kPrivate: text_header("Sensitivity", "Private"); break;
    case Sensitivity::kCompanyConfidential: text_header("Sensitivity", "Company-Confidential"); break;
  }
  for (const auto& [name, value] : c.extra_headers) text_header(name, TrimBlanks(render(value, Escaping::kNone)));
  std::string top_type = structure.substr(0, structure.find('('));
  headers.push_back("{\"name\": \"Content-Type\", \"content_type\": " + JsonString(top_type) + "}");
  if (top_type.starts_with("text/")) text_header("Content-Transfer-Encoding", "quoted-printable");

  std::string json = "{\n  \"smtputf8\": ";
  json += (to.needs_smtputf8 || MustAddress(from).needs_smtputf8) ? "true" : "false";
  json += ",\n  \"max_header_line\": " + std::to_string(c.max_header_line);
  json += ",\n  \"structure\": " + JsonString(structure);
  json += ",\n  \"headers\": [\n";
  for (std::size_t i = 0; i < headers.size(); ++i) json += "    " + headers[i] + (i + 1 < headers.size() ? ",\n" : "\n");
  json += "  ],\n  \"text\": ";
  json += text_body ? JsonString(NormaliseLineBreaks(render(*text_body, Escaping::kNone))) : "null";
  json += ",\n  \"html\": ";
  json += c.html_body ? JsonString(NormaliseLineBreaks(render(*c.html_body, Escaping::kHtml))) : "null";
  json += ",\n  \"attachments\": [";
  for (std::size_t i = 0; i < c.attachments.size(); ++i) {
    const ExpectedAttachment& attachment = c.attachments[i];
    std::string bytes = ReadFile(attachment.spec.path);
    if (attachment.seven_bit) bytes = NormaliseLineBreaks(bytes);
    std::string file_name = attachment.spec.file_name.empty() ? fs::path(attachment.spec.path).filename().string()
                                                              : attachment.spec.file_name;
    json += (i ? ",\n    " : "\n    ");
    json += "{\"filename\": " + JsonString(file_name) + ", \"content_type\": " + JsonString(attachment.content_type) +
            ", \"seven_bit\": " + (attachment.seven_bit ? "true" : "false") +
            ", \"sha256\": " + JsonString(Sha256Hex(bytes)) + "}";
  }
  json += c.attachments.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return json;
}

ExpectedAttachment Attach(std::string file, std::string type, std::string shown_name = "", bool seven_bit = false) {
  return ExpectedAttachment{AttachmentSpec{(DataDir() / file).string(), std::move(shown_name), ""}, std::move(type),
                            seven_bit};
}

AccountOverrides Account(std::string default_name, std::optional<std::string> fixed_sender,
                         std::optional<std::string> default_reply_to) {
  AccountOverrides account;
  account.default_sender_name = std::move(default_name);
  if (fixed_sender) account.fixed_sender = MustAddress(*fixed_sender);
  if (default_reply_to) account.default_reply_to = *ParseMailbox(*default_reply_to);
  return account;
}

const std::string kGerman = "Gr\xC3\xBC\xC3\x9F" "e aus M\xC3\xBCnchen";
const std::string kJapanese =
    "\xE3\x81\x94\xE6\xB3\xA8\xE6\x96\x87\xE3\x81\x82\xE3\x82\x8A\xE3\x81\x8C\xE3\x81\xA8\xE3\x81\x86\xE3\x81\x94"
    "\xE3\x81\x96\xE3\x81\x84\xE3\x81\xBE\xE3\x81\x99";

std::vector<Case> GoldenCases() {
  std::vector<Case> cases;
  {
    Case c;
    c.name = "text_only";
    c.subject = "Your order, {%firstname%}";
    c.text_body =
        "Dear {%firstname%},\n\nthank you for your order.\nWe ship it tomorrow.\n\n.\nFrom the shop team \n"
        "Best regards\n";
    cases.push_back(c);
  }
  {
    Case c;
    c.name = "html_only";
    c.columns = {"email", "firstname", "code"};
    c.values = {"tom@example.com", "Tom & \"Jerry\" <tj>", "A-1=2"};
    c.to = "tom@example.com";
    c.to_name = "{%firstname%}";
    c.text_body.reset();
    c.html_body =
        "<html><body><p>Hello {%firstname%},</p>\n<p>Your code: <b>{%code%}</b></p>\n"
        "<p style=\"color: red\">Valid until Friday.</p>\n</body></html>\n";
    c.text_from_html = "Hello {%firstname%},\n\nYour code: {%code%}\n\nValid until Friday.\n";
    cases.push_back(c);
  }
  {
    Case c;
    c.name = "html_only_newsletter";
    c.columns = {"email", "firstname", "id", "city"};
    c.values = {"anna@example.com", "Anna & \"Bo\" <x>", "a1b2&c=3", ""};
    c.to_name = "{%firstname%}";
    c.text_body.reset();
    c.html_body =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Newsletter</title>\n"
        "<style>p { color: #333 }</style></head>\n<body>\n"
        "<div style=\"display:none\">Preview text nobody should read twice</div>\n"
        "<h1>Hello {%firstname|dear reader%}!</h1>\n"
        "<p>News for {%city|your town%}: caf&eacute; &amp; more&nbsp;&mdash; read on.<br>\nSecond line.</p>\n"
        "<ul><li>Jackets &ndash; 129,00&nbsp;\xE2\x82\xAC</li><li>Scarves</li></ul>\n"
        "<table><tr><th>Item</th><th>Price</th></tr><tr><td>Tea</td><td>3 \xE2\x82\xAC</td></tr></table>\n"
        "<p><a href=\"https://shop.example/offer?id={%id%}&amp;src=mail\">See the offer</a> or write to\n"
        "<a href=\"mailto:help@shop.example\">help@shop.example</a>.</p>\n"
        "<script>track(\"{%id%}\")</script>\n"
        "<p style=\"font-size: 11px\"><a href=\"https://shop.example/unsubscribe/{%id%}\">Unsubscribe</a></p>\n"
        "</body></html>\n";
    c.text_from_html =
        "Hello {%firstname|dear reader%}!\n\n"
        "News for {%city|your town%}: caf\xC3\xA9 & more \xE2\x80\x94 read on.\nSecond line.\n\n"
        "- Jackets \xE2\x80\x93 129,00 \xE2\x82\xAC\n- Scarves\n\n"
        "Item | Price\nTea | 3 \xE2\x82\xAC\n\n"
        "See the offer (https://shop.example/offer?id={%id%}&src=mail) or write to help@shop.example.\n\n"
        "Unsubscribe (https://shop.example/unsubscribe/{%id%})\n";
    cases.push_back(c);
  }
  {
    Case c;
    c.name = "text_and_html";
    c.values = {"anna@example.com", "", "Schmidt"};
    c.to_name = "{%firstname|Customer%} {%lastname%}";
    c.subject = "{%task_title%}: news for {%firstname|you%}";
    c.text_body =
        "Hello {%firstname|Customer%},\n\nthis is \"{%subject%}\", sent to {%recipient%}.\n"
        "Unsubscribe: https://shop.example/u?r={%recipient%}\n";
    c.html_body =
        "<!DOCTYPE html>\n<html><body>\n<h1>{%task_title%}</h1>\n<p>Hello {%firstname|Customer & friends%},</p>\n"
        "<p>this is &quot;{%subject%}&quot;, sent to {%recipient%}.</p>\n</body></html>";
    cases.push_back(c);
  }
  {
    Case c;
    c.name = "attachments";
    c.html_body = "<p>Dear {%firstname%},</p><p>your documents are attached.</p>";
    c.text_from_html = "Dear {%firstname%},\n\nyour documents are attached.\n";
    c.attachments = {
        Attach("invoice.pdf", "application/pdf"),
        Attach("all_bytes.bin", "application/octet-stream"),
        Attach("photo.png", "image/png", "Foto vom Sommerfest.png"),
        Attach("question.eml", "message/rfc822", "", /*seven_bit=*/true),
        Attach("binary.eml", "application/octet-stream"),
        Attach("invoice.pdf", "application/pdf",
               "Rechnung M\xC3\xA4rz 2025 \xE2\x80\x93 \xC3\x9C" "bersicht f\xC3\xBCr Kunden mit einem sehr "
               "langen Dateinamen.pdf"),
        Attach("data.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
               "report \"Q1\" final.docx"),
        Attach("invoice.pdf", "application/pdf",
               "A rather long ASCII file name that will not fit on one header line at all.pdf"),
    };
    cases.push_back(c);
  }
  {
    Case c;
    c.name = "non_ascii";
    c.values = {"j\xC3\xBCrgen@m\xC3\xBCnchen.example", "J\xC3\xBCrgen", "Gro\xC3\x9F"};
    c.to = "j\xC3\xBCrgen@m\xC3\xBCnchen.example";
    c.from_name = "B\xC3\xA4" "ckerei M\xC3\xBCller & S\xC3\xB6hne";
    c.to_name = "{%lastname%}, {%firstname%}";
    c.subject = kGerman + ", {%firstname%} \xE2\x80\x93 " + kJapanese + " \xF0\x9F\x8E\x89";
    c.text_body = "Hallo {%firstname%} {%lastname%},\n\n" + kGerman +
                  "! Unsere Br\xC3\xB6tchen sind frisch.\n" + kJapanese + "\n\xE2\x82\xAC 3,50 \xE2\x80\x93 "
                  "\xC3\xA0 bient\xC3\xB4t\n";
    c.html_body = "<p>Ch\xC3\xA8re cliente, cher client {%firstname%},</p><p>" + kJapanese +
                  "</p><p>\xC3\x80 bient\xC3\xB4t \xE2\x80\x94 l'\xC3\xA9quipe</p>";
    c.attachments = {Attach("invoice.pdf", "application/pdf", kJapanese + ".pdf")};
    cases.push_back(c);
  }
  {
    Case c;
    c.name = "sensitivity_private";
    c.sensitivity = Sensitivity::kPrivate;
    c.from_name.reset();
    // Private: the fixed sender does not apply; the account's defaults fill what the task leaves.
    c.account = Account("Anna's Assistant", "relay@relay.example", "Support Desk <support@shop.example>");
    cases.push_back(c);
  }
  {
    Case c;
    c.name = "overrides";
    c.sensitivity = Sensitivity::kCompanyConfidential;
    c.reply_to = "\"Shop, Customer Care\" <care@shop.example>";
    // The fixed sender replaces the address; the task's own name and Reply-To stay.
    c.account = Account("Unused Name", "relay@relay.example", "unused@relay.example");
    cases.push_back(c);
  }
  {
    Case c;
    c.name = "extra_headers";
    c.columns = {"email", "firstname", "lastname", "id"};
    c.values = {"anna@example.com", "Anna", "M\xC3\xBCller-L\xC3\xBC" "denscheid", "8f3c2a9e-77b1-4f0e-9c55-0d4e1c2b3a4f"};
    c.sensitivity = Sensitivity::kPersonal;
    c.extra_headers = {
        {"List-Unsubscribe",
         "<https://shop.example/unsubscribe/very/long/path/segment?id={%id%}&list=spring-newsletter-2025>, "
         "<mailto:unsubscribe@shop.example?subject=unsubscribe-{%id%}>"},
        {"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"},
        {"X-Campaign", "spring-2025"},
        {"X-Kunde", "{%lastname%}, {%firstname%}"},
    };
    c.max_header_line = 998;  // the unsubscribe URL is one long word
    cases.push_back(c);
  }
  {
    Case c;
    c.name = "tricky_body";
    c.columns = {"email", "firstname", "note"};
    c.values = {"anna@example.com", ".Anna", "line one\r\n.line two\rFrom line three\n= sign \t"};
    c.to_name = "{%firstname%}";
    c.text_body = ".{%firstname%}\r\nFrom here on: {%note%}\n\n" + std::string(200, '-') +
                  "\nTrailing blanks   \nTrailing tab\t\r\n. single dot line\n\n.\n{%note%}";
    std::string long_html = "<table>";
    for (int i = 0; i < 30; ++i) long_html += "<tr><td>Row " + std::to_string(i) + "</td></tr>";
    c.html_body = long_html + "<p>{%firstname%}</p>" + long_html + "<p>{%note%}</p>" + long_html;
    cases.push_back(c);
  }
  return cases;
}

fs::path GoldenDir() { return fs::path(HERALD_SOURCE_DIR) / "tests" / "mime" / "golden"; }

// HERALD_UPDATE_GOLDEN=1 rewrites tests/mime/golden/ from the current output.
bool UpdateGolden() {
  const char* update = std::getenv("HERALD_UPDATE_GOLDEN");
  return update != nullptr && std::string_view(update) == "1";
}

TEST(ComposerGoldenTest, MessagesMatchGoldenFiles) {
  for (const Case& c : GoldenCases()) {
    SCOPED_TRACE(c.name);
    Composed composed = ComposeCase(c);
    ASSERT_TRUE(composed.status.ok()) << composed.status.ToString();
    std::string json = ExpectationJson(c);
    fs::path eml = GoldenDir() / (c.name + ".eml");
    fs::path expectations = GoldenDir() / (c.name + ".json");
    if (UpdateGolden()) {
      WriteFile(eml, composed.message);
      WriteFile(expectations, json);
      continue;
    }
    ASSERT_TRUE(fs::exists(eml)) << eml << " is missing; run with HERALD_UPDATE_GOLDEN=1";
    EXPECT_EQ(composed.message, ReadFile(eml)) << "differs from " << eml << "; if intended, run with HERALD_UPDATE_GOLDEN=1";
    EXPECT_EQ(json, ReadFile(expectations)) << expectations;
  }
}

// Form checks herald promises for every message, independent of the Python check.
void CheckMessageForm(std::string_view message, std::size_t max_header_line) {
  std::optional<std::vector<std::string_view>> lines = mime_test::SplitCrlfLines(message);
  ASSERT_TRUE(lines.has_value()) << "bare CR or LF";
  ASSERT_TRUE(message.ends_with("\r\n"));
  bool in_header = true;
  for (std::string_view line : *lines) {
    EXPECT_LE(line.size(), 998u);
    if (line.empty()) in_header = false;
    if (in_header) {
      EXPECT_LE(line.size(), max_header_line) << line;
    }
  }
}

TEST(ComposerGoldenTest, GoldenMessagesHaveTheRightForm) {
  for (const Case& c : GoldenCases()) {
    SCOPED_TRACE(c.name);
    Composed composed = ComposeCase(c);
    ASSERT_TRUE(composed.status.ok()) << composed.status.ToString();
    CheckMessageForm(composed.message, c.max_header_line);
    // Deterministic: the same task composes the same bytes.
    EXPECT_EQ(ComposeCase(c).message, composed.message);
  }
}

TEST(ComposerTest, AttachmentsAreSharedNotCopied) {
  Case c;
  c.attachments = {Attach("all_bytes.bin", "application/octet-stream")};
  Result<std::shared_ptr<const MessageComposer>> composer = CreateComposer(c);
  ASSERT_TRUE(composer.ok()) << composer.status().ToString();
  Address to = MustAddress(c.to);
  std::vector<std::string_view> values(c.values.begin(), c.values.end());
  RecipientParts recipient{values, &to, kMessageId, FixedDate(), nullptr};
  MessageData first;
  MessageData second;
  ASSERT_TRUE((*composer)->Compose(recipient, first).ok());
  ASSERT_TRUE((*composer)->Compose(recipient, second).ok());
  std::vector<const char*> first_pieces;
  std::vector<const char*> second_pieces;
  first.ForEachPiece([&](std::string_view piece) { first_pieces.push_back(piece.data()); });
  second.ForEachPiece([&](std::string_view piece) { second_pieces.push_back(piece.data()); });
  ASSERT_EQ(first_pieces.size(), 2u);
  ASSERT_EQ(second_pieces.size(), 2u);
  EXPECT_NE(first_pieces[0], second_pieces[0]);  // each message's own bytes
  EXPECT_EQ(first_pieces[1], second_pieces[1]);  // one base64 text for all
}

TEST(ComposerTest, AccountOverrides) {
  struct OverrideCase {
    std::string name;
    Sensitivity sensitivity;
    std::optional<std::string> from_name;
    std::optional<std::string> reply_to;
    std::optional<AccountOverrides> account;
    std::string want_from;
    std::string want_reply_to;  // empty: no Reply-To
  };
  const OverrideCase cases[] = {
      {"no account", Sensitivity::kNormal, "Shop Team", std::nullopt, std::nullopt,
       "From: Shop Team <news@shop.example>\r\n", ""},
      {"fixed sender", Sensitivity::kNormal, "Shop Team", std::nullopt,
       Account("", "relay@relay.example", std::nullopt), "From: Shop Team <relay@relay.example>\r\n", ""},
      {"fixed sender, private", Sensitivity::kPrivate, "Shop Team", std::nullopt,
       Account("", "relay@relay.example", std::nullopt), "From: Shop Team <news@shop.example>\r\n", ""},
      {"fixed sender, personal", Sensitivity::kPersonal, std::nullopt, std::nullopt,
       Account("", "relay@relay.example", std::nullopt), "From: relay@relay.example\r\n", ""},
      {"default name", Sensitivity::kNormal, std::nullopt, std::nullopt, Account("Relay Name", std::nullopt, std::nullopt),
       "From: Relay Name <news@shop.example>\r\n", ""},
      {"default name, task name wins", Sensitivity::kNormal, "Shop Team", std::nullopt,
       Account("Relay Name", std::nullopt, std::nullopt), "From: Shop Team <news@shop.example>\r\n", ""},
      {"default name, task name empty for this recipient", Sensitivity::kNormal, "{%lastname%}", std::nullopt,
       Account("Relay Name", std::nullopt, std::nullopt), "From: Relay Name <news@shop.example>\r\n", ""},
      {"default reply-to", Sensitivity::kNormal, "Shop Team", std::nullopt,
       Account("", std::nullopt, "Desk <desk@relay.example>"), "From: Shop Team <news@shop.example>\r\n",
       "Reply-To: Desk <desk@relay.example>\r\n"},
      {"task reply-to wins", Sensitivity::kNormal, "Shop Team", "care@shop.example",
       Account("", std::nullopt, "Desk <desk@relay.example>"), "From: Shop Team <news@shop.example>\r\n",
       "Reply-To: care@shop.example\r\n"},
  };
  for (const OverrideCase& oc : cases) {
    SCOPED_TRACE(oc.name);
    Case c;
    c.values = {"anna@example.com", "Anna", ""};
    c.sensitivity = oc.sensitivity;
    c.from_name = oc.from_name;
    c.reply_to = oc.reply_to;
    c.account = oc.account;
    Composed composed = ComposeCase(c);
    ASSERT_TRUE(composed.status.ok()) << composed.status.ToString();
    EXPECT_NE(composed.message.find("\r\n" + oc.want_from), std::string::npos) << composed.message;
    if (oc.want_reply_to.empty()) {
      EXPECT_EQ(composed.message.find("Reply-To:"), std::string::npos);
    } else {
      EXPECT_NE(composed.message.find("\r\n" + oc.want_reply_to), std::string::npos) << composed.message;
    }
  }
}

TEST(ComposerTest, CreateErrors) {
  struct ErrorCase {
    std::string name;
    std::function<void(Case&)> change;
    std::string want;  // part of the message
  };
  const ErrorCase cases[] = {
      {"no body", [](Case& c) { c.text_body.reset(); }, "no body"},
      {"subject in subject", [](Case& c) { c.subject = "Re: {%subject%}"; }, "{%subject%} cannot be used"},
      {"line break in subject text", [](Case& c) { c.subject = "Hello\nBcc: x@evil.example"; },
       "subject: the text 'Hello\\nBcc: x@evil.example' contains a line break (LF)"},
      {"line break in a default", [](Case& c) { c.to_name = "{%firstname|a\rb%}"; },
       "to name: the default of {%firstname%} contains a line break (CR)"},
      {"task title with line break used in a header",
       [](Case& c) {
         c.task_title = "T\r\nBcc: x";
         c.subject = "{%task_title%}";
       },
       "subject: the task title used in it contains a line break (CR)"},
      {"bad header name", [](Case& c) { c.extra_headers = {{"X Bad", "v"}}; }, "extra header 'X Bad': not a valid"},
      {"reserved header", [](Case& c) { c.extra_headers = {{"subject", "v"}}; }, "herald writes this field itself"},
      {"content header", [](Case& c) { c.extra_headers = {{"Content-Type", "text/html"}}; }, "herald writes"},
      {"bcc header", [](Case& c) { c.extra_headers = {{"Bcc", "x@evil.example"}}; }, "never sends it"},
      {"missing attachment",
       [](Case& c) { c.attachments = {ExpectedAttachment{{(DataDir() / "missing.pdf").string(), "", ""}, "", false}}; },
       "missing.pdf': cannot open: No such file or directory"},
      {"attachment is a directory",
       [](Case& c) { c.attachments = {ExpectedAttachment{{DataDir().string(), "dir.bin", ""}, "", false}}; },
       "cannot read"},
      {"bad content type",
       [](Case& c) { c.attachments = {ExpectedAttachment{{(DataDir() / "invoice.pdf").string(), "", "pdf"}, "", false}}; },
       "content type 'pdf' is not of the form type/subtype"},
      {"multipart content type",
       [](Case& c) {
         c.attachments = {ExpectedAttachment{{(DataDir() / "invoice.pdf").string(), "", "multipart/mixed"}, "", false}};
       },
       "cannot be attached"},
      {"attachment name with line break",
       [](Case& c) {
         c.attachments = {ExpectedAttachment{{(DataDir() / "invoice.pdf").string(), "a\nb.pdf", ""}, "", false}};
       },
       "the file name contains a line break (LF)"},
      {"invalid UTF-8 in the body", [](Case& c) { c.text_body = "caf\xE9 {%firstname%}"; }, "text body: not valid UTF-8"},
      {"a placeholder mark in an HTML body alone",
       [](Case& c) {
         c.text_body.reset();
         c.html_body = "<p>\xF3\xB0\x80\x80 {%firstname%}</p>";
       },
       "html body: holds U+F0000, a character of Unicode's private use plane 15"},
  };
  for (const ErrorCase& ec : cases) {
    SCOPED_TRACE(ec.name);
    Case c;
    ec.change(c);
    Result<std::shared_ptr<const MessageComposer>> composer = CreateComposer(c);
    ASSERT_FALSE(composer.ok());
    EXPECT_NE(composer.status().message().find(ec.want), std::string::npos) << composer.status().message();
  }
}

// Each column is used by one header (and the body).
Case InjectionCase() {
  Case c;
  c.columns = {"email", "firstname", "lastname", "campaign", "topic"};
  c.values = {"anna@example.com", "Anna", "Schmidt", "spring", "Hello"};
  c.from_name = "{%lastname%} Shop";
  c.to_name = "{%firstname%}";
  c.subject = "{%topic%} from the shop";
  c.extra_headers = {{"X-Campaign", "{%campaign%}"}};
  c.text_body = "Body {%firstname%} {%campaign%} {%lastname%} {%topic%}";
  return c;
}

TEST(ComposerTest, HeaderInjectionFailsOnlyThatRecipient) {
  Case c = InjectionCase();
  Result<std::shared_ptr<const MessageComposer>> composer = CreateComposer(c);
  ASSERT_TRUE(composer.ok()) << composer.status().ToString();
  const std::pair<std::string, std::string> bad_values[] = {
      {"x\r\nBcc: victim@evil.example", "contains a line break (CR)"},
      {"x\nBcc: victim@evil.example", "contains a line break (LF)"},
      {"x\rBcc: victim@evil.example", "contains a line break (CR)"},
      {"x\r\n\r\n<html>injected body", "contains a line break (CR)"},
      {std::string("x\0y", 3), "contains a NUL byte"},
      {"esc\x1B]0;title\x07", "contains a control character"},
      {"caf\xE9", "is not valid UTF-8"},
  };
  struct Field {
    std::size_t column;
    std::string want_prefix;
  };
  const Field fields[] = {
      {1, "to name: value of {%firstname%} "},
      {2, "from name: value of {%lastname%} "},
      {3, "header X-Campaign: value of {%campaign%} "},
      {4, "subject: value of {%topic%} "},
  };
  for (const Field& field : fields) {
    for (const auto& [value, problem] : bad_values) {
      Case bad = c;
      bad.values[field.column] = value;
      Composed composed = ComposeWith(**composer, bad);
      EXPECT_EQ(composed.status.code(), StatusCode::kInvalidArgument) << JsonString(value);
      EXPECT_EQ(composed.status.message(), field.want_prefix + problem);
      EXPECT_EQ(composed.message, "") << "nothing is left in the output";
    }
  }
  // Body values may hold line breaks (they are normalised) but must be UTF-8.
  Case body_only = c;
  body_only.columns.push_back("note");
  body_only.values.push_back("\xFF");
  body_only.text_body = "Note: {%note%}";
  Result<std::shared_ptr<const MessageComposer>> body_composer = CreateComposer(body_only);
  ASSERT_TRUE(body_composer.ok());
  EXPECT_EQ(ComposeWith(**body_composer, body_only).status.message(), "text body: value of {%note%} is not valid UTF-8");

  // The composer is unaffected: the next recipient composes.
  Composed good = ComposeWith(**composer, c);
  ASSERT_TRUE(good.status.ok()) << good.status.ToString();
  EXPECT_NE(good.message.find("Subject: Hello from the shop\r\n"), std::string::npos);
}

TEST(ComposerTest, RecipientErrors) {
  Case c;
  Result<std::shared_ptr<const MessageComposer>> composer = CreateComposer(c);
  ASSERT_TRUE(composer.ok());
  Address to = MustAddress(c.to);
  std::vector<std::string_view> values(c.values.begin(), c.values.end());
  MessageData data;

  RecipientParts no_to{values, nullptr, kMessageId, FixedDate(), nullptr};
  EXPECT_EQ((*composer)->Compose(no_to, data).message(), "to: no recipient address");

  RecipientParts bad_id{values, &to, "no-at-sign", FixedDate(), nullptr};
  EXPECT_TRUE((*composer)->Compose(bad_id, data).message().starts_with("message-id 'no-at-sign'"));
  EXPECT_TRUE(data.empty());

  std::vector<std::string_view> too_few(values.begin(), values.begin() + 1);
  RecipientParts short_values{too_few, &to, kMessageId, FixedDate(), nullptr};
  EXPECT_EQ((*composer)->Compose(short_values, data).code(), StatusCode::kInvalidArgument);

  // Values for the built-ins too are accepted (and replaced).
  std::vector<std::string_view> with_builtins = values;
  with_builtins.resize(values.size() + 3, "ignored");
  RecipientParts full{with_builtins, &to, kMessageId, FixedDate(), nullptr};
  EXPECT_TRUE((*composer)->Compose(full, data).ok());
}

// Tricky values that are allowed: the message must carry exactly the expected headers.
std::vector<Case> TrickyCases() {
  std::vector<Case> cases;
  const std::vector<std::string> lookalikes = {
      "=?utf-8?q?=0D=0A?=",
      "=?utf-8?q?=0D=0ABcc:_victim@evil.example?=",
      "=?UTF-8?B?DQpCY2M6IHZpY3RpbUBldmlsLmV4YW1wbGU=?=",
      "x=?iso-8859-1?q?a?=y",
      "\"=?utf-8?q?quoted?=\" <fake@evil.example>",
  };
  int n = 0;
  for (const std::string& value : lookalikes) {
    Case c = InjectionCase();
    c.name = "lookalike_" + std::to_string(n++);
    c.values = {"anna@example.com", value, value, value, value};
    cases.push_back(c);
  }
  {
    Case c = InjectionCase();
    c.name = "overlong_words";
    c.values = {"anna@example.com", std::string(2000, 'A'), std::string(1500, 'b') + "\xC3\xA4",
                "x " + std::string(1200, 'c') + " y", std::string(999, 'd')};
    cases.push_back(c);
  }
  {
    Case c = InjectionCase();
    c.name = "overlong_text";
    std::string many;
    for (int i = 0; i < 400; ++i) many += (i % 7 == 0 ? "W\xC3\xB6rter " : "words ");
    c.values = {"anna@example.com", many, many, many, many};
    cases.push_back(c);
  }
  {
    Case c = InjectionCase();
    c.name = "tabs";
    c.values = {"anna@example.com", "tab\there", "two\t\ttabs", "x\ty", "\tpadded\t"};
    cases.push_back(c);
  }
  {
    Case c = InjectionCase();
    c.name = "specials_in_names";
    c.values = {"anna@example.com", "Schmidt, Anna \"AS\" (Sales) <boss>", "a\\b; c: d@e", " padded ", "a;b"};
    cases.push_back(c);
  }
  // Random Unicode in every template value.
  std::mt19937 random(4242);
  const std::vector<std::string> pieces = {
      "a", "Z", " ", "  ", "\t", ",", "\"", "\\", "=?", "?=", "_", "=", ".", "@", "<", ">", "(", ")", ";",
      "\xC3\xA4", "\xC3\x9F", "\xE2\x82\xAC", "\xE6\x97\xA5", "\xF0\x9F\x98\x80", "\xE2\x80\x93", "x", "word",
  };
  for (int i = 0; i < 40; ++i) {
    Case c = InjectionCase();
    c.name = "random_" + std::to_string(i);
    c.values = {"anna@example.com", "", "", "", ""};
    for (std::size_t column = 1; column < 5; ++column) {
      std::size_t count = random() % (i < 30 ? 12 : 120);
      for (std::size_t k = 0; k < count; ++k) c.values[column] += pieces[random() % pieces.size()];
    }
    c.html_body = "<p>{%firstname%}</p>\n<p>{%lastname%}</p>{%campaign%}";
    cases.push_back(c);
  }
  return cases;
}

TEST(ComposerTest, TrickyValuesKeepTheirShape) {
  for (const Case& c : TrickyCases()) {
    SCOPED_TRACE(c.name);
    Composed composed = ComposeCase(c);
    ASSERT_TRUE(composed.status.ok()) << composed.status.ToString();
    CheckMessageForm(composed.message, 998);
    // Only herald's own encoded words: nothing a decoder would turn into CR or LF.
    EXPECT_EQ(composed.message.find("=?utf-8?"), std::string::npos);
    EXPECT_EQ(composed.message.find("=?iso-8859-1?"), std::string::npos);
    EXPECT_EQ(composed.message.find("=?UTF-8?B?DQpC"), std::string::npos);
  }
}

// Runs tests/mime/check_messages.py (Python's email package) over the golden messages and a batch
// of freshly composed tricky ones. Debian's /usr/bin/python3, not whatever is first on PATH.
int RunPythonCheck(const std::vector<fs::path>& dirs, std::string* output) {
  std::string command = "/usr/bin/python3 " + (fs::path(HERALD_SOURCE_DIR) / "tests/mime/check_messages.py").string();
  for (const fs::path& dir : dirs) command += " '" + dir.string() + "'";
  command += " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output->append(buffer, n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ComposerPythonTest, PythonEmailParserAgrees) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "/usr/bin/python3 is not installed";
  fs::path fresh = DataDir() / "fresh";
  fs::create_directories(fresh);
  std::vector<Case> cases = TrickyCases();
  for (Case& c : GoldenCases()) {
    c.name = "fresh_" + c.name;
    cases.push_back(c);
  }
  for (const Case& c : cases) {
    Composed composed = ComposeCase(c);
    ASSERT_TRUE(composed.status.ok()) << c.name << ": " << composed.status.ToString();
    WriteFile(fresh / (c.name + ".eml"), composed.message);
    Case expectation = c;
    expectation.max_header_line = 998;
    WriteFile(fresh / (c.name + ".json"), ExpectationJson(expectation));
  }
  std::string output;
  int code = RunPythonCheck({GoldenDir(), fresh}, &output);
  EXPECT_EQ(code, 0) << output;
  EXPECT_NE(output.find("checked " + std::to_string(cases.size() + GoldenCases().size()) + " messages"),
            std::string::npos)
      << output;
}

TEST(ComposerPythonTest, PythonCheckCatchesWrongMessages) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "/usr/bin/python3 is not installed";
  // The checker must be able to fail: a header it does not expect, a wrong subject, a bare LF,
  // a changed attachment byte, an injected header.
  Case c = GoldenCases()[4];  // attachments
  Composed composed = ComposeCase(c);
  ASSERT_TRUE(composed.status.ok());
  std::string json = ExpectationJson(c);
  const std::pair<std::string, std::function<void(std::string&, std::string&)>> breakages[] = {
      {"extra header", [](std::string& m, std::string&) { m.insert(0, "X-Extra: 1\r\n"); }},
      {"wrong subject", [](std::string&, std::string& j) { j.replace(j.find("Hello Anna"), 10, "Hello Bert"); }},
      {"bare LF", [](std::string& m, std::string&) { m.replace(m.find("\r\nTo:"), 2, "\n"); }},
      {"attachment byte", [](std::string& m, std::string&) { m[m.find("JVBERi0") + 3] = 'A'; }},
      {"injected Bcc", [](std::string& m, std::string&) { m.insert(m.find("\r\nMIME-Version") + 2, "Bcc: v@evil.example\r\n"); }},
  };
  int n = 0;
  for (const auto& [name, breakage] : breakages) {
    fs::path dir = DataDir() / ("broken_" + std::to_string(n++));
    fs::create_directories(dir);
    std::string message = composed.message;
    std::string expectations = json;
    breakage(message, expectations);
    WriteFile(dir / "broken.eml", message);
    WriteFile(dir / "broken.json", expectations);
    std::string output;
    EXPECT_EQ(RunPythonCheck({dir}, &output), 1) << name << "\n" << output;
  }
}

TEST(ComposerTest, ConcurrentComposeGivesTheSameBytes) {
  std::vector<Case> cases = GoldenCases();
  std::vector<std::shared_ptr<const MessageComposer>> composers;
  std::vector<std::string> want;
  for (const Case& c : cases) {
    Result<std::shared_ptr<const MessageComposer>> composer = CreateComposer(c);
    ASSERT_TRUE(composer.ok());
    composers.push_back(*composer);
    want.push_back(ComposeWith(**composer, c).message);
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        std::size_t i = (round + t) % cases.size();
        if (ComposeWith(*composers[i], cases[i]).message != want[i]) ++mismatches;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(ComposerTest, ComposeDoesNotAllocateOnceWarm) {
  for (const Case& c : GoldenCases()) {
    SCOPED_TRACE(c.name);
    Result<std::shared_ptr<const MessageComposer>> composer = CreateComposer(c);
    ASSERT_TRUE(composer.ok());
    Address to = MustAddress(c.to);
    std::vector<std::string_view> values(c.values.begin(), c.values.end());
    const AccountOverrides* account = c.account ? &*c.account : nullptr;
    RecipientParts recipient{values, &to, kMessageId, FixedDate(), account};
    MessageData data;
    ASSERT_TRUE((*composer)->Compose(recipient, data).ok());  // warms buffers
    g_allocations = 0;
    g_count_allocations = true;
    Status status = (*composer)->Compose(recipient, data);
    g_count_allocations = false;
    ASSERT_TRUE(status.ok());
    EXPECT_EQ(g_allocations, 0u);
  }
}

}  // namespace
}  // namespace herald
