// Composes N personalised messages (default 1,000,000) on one thread with MessageComposer and
// prints messages per second and MB per second. Each message is ~5 KB: text and HTML bodies in
// German and French with a few placeholders, a personalised subject and To display name, a
// List-Unsubscribe header with the recipient's id — the target is 200,000 messages/s.
//
//   build/bench/compose_bench [messages] [attachment-file] [--html-only]
//
// With an attachment file, every message also carries it (shared, not copied). --html-only leaves
// the text body out: the task has the HTML body alone.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "address/address.h"
#include "mime/composer.h"

namespace {

using herald::Template;

const char kText[] =
    "Hallo {%firstname%} {%lastname%},\n"
    "\n"
    "der Frühling ist da – und mit ihm unsere neue Kollektion! Wir haben für Sie in {%city%} eine\n"
    "Auswahl zusammengestellt, die Ihnen gefallen wird: leichte Jacken, Blusen aus Leinen, Schuhe für\n"
    "lange Spaziergänge und Accessoires, die jeden Tag ein wenig schöner machen.\n"
    "\n"
    "Als treue Kundin, als treuer Kunde erhalten Sie bis Ende März 15 % Rabatt auf Ihren nächsten\n"
    "Einkauf. Geben Sie dazu einfach den Code FRUEHLING-{%id%} im Warenkorb ein. Der Code gilt online\n"
    "und in allen unseren Filialen, auch in der Filiale in {%city%}.\n"
    "\n"
    "Unsere Empfehlungen für Sie:\n"
    "  * Übergangsjacke „Brise“ – wasserabweisend, in fünf Farben, 129,00 €\n"
    "  * Leinenbluse „Sommerwind“ – luftig und knitterarm, 59,90 €\n"
    "  * Ledersneaker „Stadtbummel“ – handgefertigt in Portugal, 119,00 €\n"
    "  * Tuch „Morgenröte“ – 100 % Seide, 39,90 €\n"
    "\n"
    "Pour nos clients francophones : découvrez aussi notre sélection « Printemps à Paris » avec des\n"
    "pièces légères, élégantes et pensées pour les journées ensoleillées. Livraison gratuite dès 50 €.\n"
    "\n"
    "Haben Sie Fragen zu Ihrer Bestellung oder zu unseren Produkten? Unser Kundenservice ist montags\n"
    "bis freitags von 8 bis 18 Uhr für Sie da – telefonisch unter 0800 123 456 (kostenlos) oder per\n"
    "E-Mail an service@shop.example. Wir freuen uns auf Ihren Besuch!\n"
    "\n"
    "Mit frühlingshaften Grüßen\n"
    "Ihr Team vom Modehaus Müller & Söhne\n"
    "\n"
    "-- \n"
    "Modehaus Müller & Söhne GmbH, Königstraße 12, 70173 Stuttgart\n"
    "Geschäftsführer: Jürgen Müller, Amtsgericht Stuttgart HRB 123456\n"
    "Sie erhalten diese E-Mail, weil Sie sich für unseren Newsletter angemeldet haben.\n"
    "Abmelden: https://shop.example/abmelden?id={%id%}\n";

const char kHtml[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"de\"><head><meta charset=\"utf-8\"><title>Frühling bei Müller & Söhne</title></head>\n"
    "<body style=\"font-family: Helvetica, Arial, sans-serif; color: #222; max-width: 600px\">\n"
    "<h1 style=\"font-size: 22px\">Hallo {%firstname%} {%lastname%},</h1>\n"
    "<p>der Frühling ist da &ndash; und mit ihm unsere neue Kollektion! Wir haben für Sie in\n"
    "<strong>{%city%}</strong> eine Auswahl zusammengestellt, die Ihnen gefallen wird: leichte Jacken,\n"
    "Blusen aus Leinen, Schuhe für lange Spaziergänge und Accessoires.</p>\n"
    "<p>Als treue Kundin, als treuer Kunde erhalten Sie bis Ende März <b>15&nbsp;% Rabatt</b> auf Ihren\n"
    "nächsten Einkauf. Ihr Code: <code style=\"background: #eee\">FRUEHLING-{%id%}</code></p>\n"
    "<table cellpadding=\"6\" style=\"border-collapse: collapse; width: 100%\">\n"
    "<tr><td>Übergangsjacke „Brise“</td><td>wasserabweisend, fünf Farben</td><td>129,00&nbsp;€</td></tr>\n"
    "<tr><td>Leinenbluse „Sommerwind“</td><td>luftig und knitterarm</td><td>59,90&nbsp;€</td></tr>\n"
    "<tr><td>Ledersneaker „Stadtbummel“</td><td>handgefertigt in Portugal</td><td>119,00&nbsp;€</td></tr>\n"
    "<tr><td>Tuch „Morgenröte“</td><td>100&nbsp;% Seide</td><td>39,90&nbsp;€</td></tr>\n"
    "</table>\n"
    "<p lang=\"fr\">Pour nos clients francophones&nbsp;: découvrez aussi notre sélection «&nbsp;Printemps à\n"
    "Paris&nbsp;» avec des pièces légères et élégantes. Livraison gratuite dès 50&nbsp;€.</p>\n"
    "<p>Fragen? Unser Kundenservice ist montags bis freitags von 8 bis 18 Uhr für Sie da: 0800 123 456\n"
    "oder <a href=\"mailto:service@shop.example\">service@shop.example</a>.</p>\n"
    "<p>Mit frühlingshaften Grüßen<br>Ihr Team vom Modehaus Müller &amp; Söhne</p>\n"
    "<p style=\"font-size: 11px; color: #777\">Modehaus Müller &amp; Söhne GmbH, Königstraße 12, 70173\n"
    "Stuttgart &middot; <a href=\"https://shop.example/abmelden?id={%id%}\">Abmelden</a></p>\n"
    "</body></html>\n";

struct Recipient {
  std::vector<std::string> values;  // email, firstname, lastname, city, id
  herald::Address address;
  std::string message_id;
};

template <typename T>
T Check(herald::Result<T> result, const char* what) {
  if (!result.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, result.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*result);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const auto flag = std::find(args.begin(), args.end(), "--html-only");
  const bool html_only = flag != args.end();
  if (html_only) args.erase(flag);
  const long messages = args.size() > 0 ? std::stol(args[0]) : 1'000'000;
  herald::FieldSet fields({"email", "firstname", "lastname", "city", "id"});
  herald::ComposerSpec spec;
  spec.task_title = "Frühlingsnewsletter";
  spec.from_address = herald::Address{"newsletter", "shop.example"};
  spec.from_name = Check(Template::Compile("Modehaus Müller & Söhne", fields, "from name"), "from name");
  spec.to_name = Check(Template::Compile("{%firstname%} {%lastname%}", fields, "to name"), "to name");
  spec.subject = Check(Template::Compile("{%firstname%}, Ihr Frühlingsrabatt für {%city%} wartet", fields, "subject"),
                       "subject");
  if (!html_only) spec.text_body = Check(Template::Compile(kText, fields, "text body"), "text body");
  spec.html_body = Check(Template::Compile(kHtml, fields, "html body"), "html body");
  spec.extra_headers.push_back(
      {"List-Unsubscribe",
       Check(Template::Compile("<https://shop.example/abmelden?id={%id%}>", fields, "List-Unsubscribe"), "header")});
  spec.extra_headers.push_back({"List-Unsubscribe-Post",
                                Check(Template::Compile("List-Unsubscribe=One-Click", fields, "header"), "header")});
  if (args.size() > 1) spec.attachments.push_back({args[1], "", ""});
  auto composer = Check(herald::MessageComposer::Create(std::move(spec), fields), "create");

  static const char* kFirst[] = {"Anna", "Jürgen", "Zoë", "François", "Łukasz", "Siobhán", "Mehmet", "Ines"};
  static const char* kLast[] = {"Schmidt", "Müller", "Dubois", "Kowalski", "Groß", "O'Brien", "Yılmaz", "Weiß"};
  static const char* kCity[] = {"Zürich", "Lyon", "Kraków", "Graz", "Frankfurt am Main", "Köln", "Wien", "Bern"};
  std::vector<Recipient> recipients(1024);
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    Recipient& r = recipients[i];
    r.address = herald::Address{fmt::format("reader{:07d}", i), "example.com"};
    r.values = {r.address.ToString(), kFirst[i % 8], kLast[(i / 8) % 8], kCity[(i / 3) % 8],
                fmt::format("{:08x}", i * 2654435761u)};
    r.message_id = fmt::format("{:016x}.{}@mail.shop.example", i * 0x9E3779B97F4A7C15ull, i);
  }

  herald::MessageData data;
  std::vector<std::string_view> values(5);
  const auto date = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  unsigned long long bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  for (long n = 0; n < messages; ++n) {
    const Recipient& r = recipients[static_cast<std::size_t>(n) % recipients.size()];
    for (std::size_t k = 0; k < values.size(); ++k) values[k] = r.values[k];
    herald::RecipientParts parts{values, &r.address, r.message_id, date, nullptr};
    herald::Status status = composer->Compose(parts, data);
    if (!status.ok()) {
      std::fprintf(stderr, "compose: %s\n", status.ToString().c_str());
      return 1;
    }
    bytes += data.size();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("%ld messages in %.3f s: %.0f messages/s, %.1f MB/s, %.0f bytes per message; peak RSS %.1f MB\n",
              messages, seconds, messages / seconds, bytes / seconds / 1e6, static_cast<double>(bytes) / messages,
              usage.ru_maxrss / 1024.0);
  return 0;
}
