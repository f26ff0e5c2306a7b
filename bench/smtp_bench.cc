// The SMTP benchmark: herald's full engine (RunTask with a SqliteStore and the real SMTP
// transport) sending N personalised ~5 KB messages (text + HTML, 5 placeholders) to Postfix's
// smtp-sink on 127.0.0.1, against Postfix's smtp-source sending the same number of messages of
// the same size over the same number of connections to the same sink. For 1, 4 and 16
// connections it runs each several times (alternating which goes first) and prints every run and
// the medians: messages/s of both, the ratio herald / smtp-source, herald's CPU seconds per 1,000
// messages and its peak RSS. smtp-source repeats one fixed message and records nothing; herald
// composes each message and records each recipient's result in its store.
//
//   build/bench/smtp_bench [--messages N] [--runs R] [--connections 1,4,16] [--keep]
//   build/bench/smtp_bench --scale 10000,100000,1000000 [--connections 4]
//
// --scale runs herald alone, once per list size, at the first connection count: the rate, CPU per
// 1,000 messages and peak RSS at each size show whether the cost per recipient stays flat as the
// task grows (a store that slows down with its size, or memory held per recipient, shows here).
//
// herald's rate is RunProgress::elapsed from the final OnProgress (from the start of sending, so
// without the import, which is reported on its own); its CPU is the process's user + system time
// over the same span. Each herald run is a fresh process (this program with --one-run) with a
// fresh store, so its peak RSS is its own. smtp-source keeps its connections (-d), as herald
// does (reconnect_every stays at its default, 999); its time is from start to exit. smtp-sink's
// CPU per 1,000 messages is shown too: on 2 cores the sink shares the machine with the client.
//
// Needs smtp-sink and smtp-source (Debian package postfix) on PATH or in /usr/sbin; run as root,
// smtp-sink drops to the user postfix (-u). Everything lives in a temporary folder that is
// removed at the end (--keep keeps it: task-<C>.toml and accounts-<C>.toml there work with
// `herald send -q`).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "address/address.h"
#include "config/loader.h"
#include "core/clock.h"
#include "engine/prepared_task.h"
#include "engine/recipient_import.h"
#include "engine/task_runner.h"
#include "engine/transport_factory.h"
#include "smtp/smtp_transport.h"
#include "store/sqlite_store.h"

namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// The message: the compose benchmark's spring newsletter (German and French, text and HTML).
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

const char kTask[] =
    "id = \"smtp-bench\"\n"
    "title = \"Frühlingsnewsletter\"\n"
    "accounts = \"accounts-{connections}.toml\"\n"
    "store = \"store.db\"\n"
    "\n"
    "[message]\n"
    "from = \"Modehaus Müller & Söhne <newsletter@shop.example>\"\n"
    "to_name = \"{{%firstname%}} {{%lastname%}}\"\n"
    "subject = \"{{%firstname%}}, Ihr Frühlingsrabatt für {{%city%}} wartet\"\n"
    "text_file = \"body.txt\"\n"
    "html_file = \"body.html\"\n"
    "headers = {{ \"List-Unsubscribe\" = \"<https://shop.example/abmelden?id={{%id%}}>\", "
    "\"List-Unsubscribe-Post\" = \"List-Unsubscribe=One-Click\" }}\n"
    "\n"
    "[recipients]\n"
    "file = \"recipients.csv\"\n"
    "address_column = \"email\"\n"
    "\n"
    "[sending]\n"
    "concurrency = {connections}\n";

const char kAccounts[] =
    "[[account]]\n"
    "name = \"sink\"\n"
    "kind = \"smtp\"\n"
    "host = \"127.0.0.1\"\n"
    "port = {port}\n"
    "security = \"none\"\n"
    "helo_name = \"bench.herald.test\"\n"
    "max_connections = {connections}\n";

// ---------------------------------------------------------------- one herald run (--one-run)

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

long PeakRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

class SmtpOnlyFactory final : public herald::TransportFactory {
 public:
  herald::Result<std::unique_ptr<herald::Transport>> Create(const herald::AccountConfig& account,
                                                            Transcript transcript) override {
    auto transport = herald::SmtpTransport::Create(account, std::move(transcript));
    if (!transport.ok()) return transport.status();
    return std::unique_ptr<herald::Transport>(std::move(*transport));
  }
};

class BenchObserver final : public herald::RunObserver {
 public:
  explicit BenchObserver(SteadyClock::time_point start) : start_(start) {}

  void OnImport(const herald::ImportReport& report) override {
    import_seconds = std::chrono::duration<double>(SteadyClock::now() - start_).count();
    imported = report.imported;
  }
  void OnProgress(const herald::RunProgress& progress) override {
    double cpu = CpuSeconds();
    if (!started) {
      started = true;
      cpu_at_start = cpu;
    }
    cpu_at_end = cpu;
    last = progress;
  }
  void OnResult(const herald::RecipientEvent& event) override {
    if (event.result.status == herald::RecipientStatus::kSent || ++problems > 5) return;
    std::fprintf(stderr, "herald: %s: %s %s\n", event.recipient.address.c_str(),
                 std::string(herald::RecipientStatusName(event.result.status)).c_str(),
                 event.result.error.text.c_str());
  }
  void OnWarning(std::string_view warning) override {
    std::fprintf(stderr, "herald: warning: %.*s\n", static_cast<int>(warning.size()), warning.data());
  }

  SteadyClock::time_point start_;
  double import_seconds = 0;
  std::size_t imported = 0;
  bool started = false;
  double cpu_at_start = 0;
  double cpu_at_end = 0;
  std::size_t problems = 0;
  herald::RunProgress last;
};

// Sends the task through the full engine into a fresh store; prints one line of key=value.
int OneRun(const std::string& task_file, const std::string& accounts_file, const std::string& store_file) {
  auto fail = [](const herald::Status& status) {
    std::fprintf(stderr, "herald: %s\n", status.ToString().c_str());
    return 1;
  };
  herald::Result<herald::TaskConfig> task = herald::LoadTask(task_file);
  if (!task.ok()) return fail(task.status());
  herald::Result<herald::AccountSet> accounts = herald::LoadAccounts(accounts_file);
  if (!accounts.ok()) return fail(accounts.status());
  herald::Result<std::unique_ptr<herald::SqliteStore>> store = herald::SqliteStore::Open(store_file);
  if (!store.ok()) return fail(store.status());
  herald::SystemClock clock;
  SmtpOnlyFactory transports;
  BenchObserver observer(SteadyClock::now());
  herald::Result<herald::RunReport> report =
      herald::RunTask(*task, *accounts, **store, clock, transports, observer, herald::RunOptions{});
  if (!report.ok()) return fail(report.status());
  if (!report->stopped_by.ok()) return fail(report->stopped_by);
  const double seconds = std::chrono::duration<double>(observer.last.elapsed).count();
  std::printf("sent=%llu failed=%llu deferred=%llu imported=%zu import_s=%.3f send_s=%.4f cpu_s=%.4f rss_kb=%ld\n",
              static_cast<unsigned long long>(report->sent), static_cast<unsigned long long>(report->failed),
              static_cast<unsigned long long>(report->deferred), observer.imported, observer.import_seconds, seconds,
              observer.cpu_at_end - observer.cpu_at_start, PeakRssKb());
  return 0;
}

// ---------------------------------------------------------------- the driver

volatile sig_atomic_t g_stop = 0;
volatile pid_t g_sink = 0;
volatile pid_t g_child = 0;

void OnSignal(int) {
  g_stop = 1;
  if (g_child > 0) kill(g_child, SIGTERM);
  if (g_sink > 0) kill(g_sink, SIGTERM);
}

[[noreturn]] void Die(const std::string& text) {
  std::fprintf(stderr, "smtp_bench: %s\n", text.c_str());
  if (g_sink > 0) kill(g_sink, SIGTERM);
  std::exit(1);
}

std::string FindTool(const std::string& name) {
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
    }
  }
  for (const char* dir : {"/usr/sbin", "/usr/local/sbin", "/sbin"}) {
    std::string candidate = std::string(dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  Die(name + " not found (Debian package postfix)");
}

// Starts `argv` with stdin from /dev/null, stdout to `out_fd` (or `out_file`), stderr to
// `err_file`; returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, int out_fd, const std::string& out_file, const std::string& err_file) {
  pid_t pid = fork();
  if (pid < 0) Die(fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    int out = out_fd >= 0 ? out_fd : open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0 || err < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid`; returns its exit status (-1 when it did not exit normally) and its rusage.
int Wait(pid_t pid, rusage* usage) {
  int status = 0;
  while (wait4(pid, &status, 0, usage) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Tail(const std::string& file) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > 2000) text = "..." + text.substr(text.size() - 2000);
  return text;
}

std::uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    Die(fmt::format("cannot get a port from the system: {}", std::strerror(errno)));
  }
  close(fd);
  return ntohs(address.sin_port);
}

// Whether something on 127.0.0.1:port greets with 220.
bool Greets(std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  bool ok = false;
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    char buffer[512];
    ssize_t got = read(fd, buffer, sizeof buffer);
    ok = got >= 3 && std::memcmp(buffer, "220", 3) == 0;
    const char quit[] = "QUIT\r\n";
    if (write(fd, quit, sizeof quit - 1) < 0) ok = ok && true;
  }
  close(fd);
  return ok;
}

// smtp-sink's user + system CPU seconds so far.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double Seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; }

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string Group(double value) {
  std::string digits = fmt::format("{:.0f}", value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

struct Options {
  long messages = 20'000;
  int runs = 5;
  std::vector<int> connections = {1, 4, 16};
  std::vector<long> scale;  // --scale: herald alone at these list sizes
  bool keep = false;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--messages") {
      options.messages = std::stol(value());
    } else if (arg == "--runs") {
      options.runs = std::stoi(value());
    } else if (arg == "--connections") {
      options.connections.clear();
      std::stringstream list(value());
      std::string item;
      while (std::getline(list, item, ',')) options.connections.push_back(std::stoi(item));
    } else if (arg == "--scale") {
      std::stringstream list(value());
      std::string item;
      while (std::getline(list, item, ',')) options.scale.push_back(std::stol(item));
    } else if (arg == "--keep") {
      options.keep = true;
    } else {
      Die("usage: smtp_bench [--messages N] [--runs R] [--connections 1,4,16] [--keep]\n"
          "       smtp_bench --scale N1,N2,... [--connections C]");
    }
  }
  for (long n : options.scale) {
    if (n < 1) Die("--scale sizes must be positive");
  }
  if (options.messages < 1 || options.runs < 1 || options.connections.empty()) Die("nothing to measure");
  for (int c : options.connections) {
    if (c < 1 || c > 256) Die("connections must be 1..256");
  }
  return options;
}

void WriteFile(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) Die("cannot write " + path.string());
}

void WriteRecipients(const fs::path& path, long count) {
  static const char* kFirst[] = {"Anna", "Jürgen", "Zoë", "François", "Łukasz", "Siobhán", "Mehmet", "Ines"};
  static const char* kLast[] = {"Schmidt", "Müller", "Dubois", "Kowalski", "Groß", "O'Brien", "Yılmaz", "Weiß"};
  static const char* kCity[] = {"Zürich", "Lyon", "Kraków", "Graz", "Frankfurt am Main", "Köln", "Wien", "Bern"};
  std::string text = "email,firstname,lastname,city,id\n";
  for (long i = 0; i < count; ++i) {
    fmt::format_to(std::back_inserter(text), "reader{:07d}@example.com,{},{},{},{:08x}\n", i, kFirst[i % 8],
                   kLast[(i / 8) % 8], kCity[(i / 3) % 8], static_cast<std::uint32_t>(i * 2654435761u));
  }
  WriteFile(path, text);
}

// The mean size of herald's messages for the first recipients (composed as the engine does).
std::size_t MessageSize(const fs::path& task_file) {
  herald::Result<herald::TaskConfig> task = herald::LoadTask(task_file.string());
  if (!task.ok()) Die(task.status().ToString());
  herald::Result<std::vector<std::string>> columns = herald::ReadRecipientColumns(task->recipients);
  if (!columns.ok()) Die(columns.status().ToString());
  herald::Result<herald::PreparedTask> prepared = herald::PrepareTask(*task, *columns);
  if (!prepared.ok()) Die(prepared.status().ToString());
  std::ifstream csv(task->recipients.file);
  std::string line;
  std::getline(csv, line);
  std::size_t total = 0;
  std::size_t count = 0;
  herald::MessageData message;
  while (count < 1000 && std::getline(csv, line)) {
    std::vector<std::string> values;
    std::stringstream cells(line);
    std::string cell;
    while (std::getline(cells, cell, ',')) values.push_back(cell);
    std::vector<std::string_view> views(values.begin(), values.end());
    herald::Result<herald::Address> to = herald::ParseAddress(values[0]);
    if (!to.ok()) Die(to.status().ToString());
    std::string id = fmt::format("0123456789abcdef.{}@shop.example", count + 1);
    herald::RecipientParts parts{views, &*to, id, herald::SystemClock().Now(), nullptr};
    if (herald::Status composed = prepared->composer->Compose(parts, message); !composed.ok()) {
      Die(composed.ToString());
    }
    total += message.size();
    ++count;
  }
  return count == 0 ? 0 : total / count;
}

struct HeraldRun {
  double rate = 0, seconds = 0, cpu_per_1k = 0, rss_mb = 0, import_seconds = 0;
};

std::map<std::string, std::string> ParseFields(const std::string& line) {
  std::map<std::string, std::string> fields;
  std::istringstream in(line);
  std::string item;
  while (in >> item) {
    std::size_t eq = item.find('=');
    if (eq != std::string::npos) fields[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return fields;
}

HeraldRun RunHerald(const fs::path& dir, int connections, long messages, double& sink_cpu) {
  fs::remove(dir / "store.db");
  fs::remove(dir / "store.db-wal");
  fs::remove(dir / "store.db-shm");
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) Die("pipe failed");
  double sink_before = ProcessCpuSeconds(g_sink);
  pid_t pid = Spawn({"/proc/self/exe", "--one-run", (dir / fmt::format("task-{}.toml", connections)).string(),
                     (dir / fmt::format("accounts-{}.toml", connections)).string(), (dir / "store.db").string()},
                    pipe_fds[1], "", (dir / "herald.log").string());
  g_child = pid;
  close(pipe_fds[1]);
  std::string output;
  char buffer[512];
  ssize_t got;
  while ((got = read(pipe_fds[0], buffer, sizeof buffer)) != 0) {
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) break;
    output.append(buffer, static_cast<std::size_t>(got));
  }
  close(pipe_fds[0]);
  int status = Wait(pid, nullptr);
  g_child = 0;
  sink_cpu = ProcessCpuSeconds(g_sink) - sink_before;
  if (g_stop) return {};
  std::map<std::string, std::string> fields = ParseFields(output);
  if (status != 0 || fields["sent"] != std::to_string(messages)) {
    Die(fmt::format("herald run with {} connection(s) failed (exit {}): {}\n{}", connections, status, output,
                    Tail((dir / "herald.log").string())));
  }
  HeraldRun run;
  run.seconds = std::stod(fields["send_s"]);
  run.rate = static_cast<double>(messages) / run.seconds;
  run.cpu_per_1k = std::stod(fields["cpu_s"]) / (static_cast<double>(messages) / 1000);
  run.rss_mb = std::stod(fields["rss_kb"]) / 1024;
  run.import_seconds = std::stod(fields["import_s"]);
  return run;
}

struct SourceRun {
  double rate = 0, seconds = 0, cpu_per_1k = 0;
};

SourceRun RunSmtpSource(const fs::path& dir, const std::string& tool, int connections, long messages,
                        std::size_t size, std::uint16_t port, double& sink_cpu) {
  double sink_before = ProcessCpuSeconds(g_sink);
  auto start = SteadyClock::now();
  pid_t pid = Spawn({tool, "-d", "-s", std::to_string(connections), "-m", std::to_string(messages), "-l",
                     std::to_string(size), "-M", "bench.herald.test", "-f", "newsletter@shop.example", "-t",
                     "reader@example.com", fmt::format("127.0.0.1:{}", port)},
                    -1, (dir / "smtp-source.out").string(), (dir / "smtp-source.log").string());
  g_child = pid;
  rusage usage{};
  int status = Wait(pid, &usage);
  g_child = 0;
  SourceRun run;
  run.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  sink_cpu = ProcessCpuSeconds(g_sink) - sink_before;
  if (g_stop) return {};
  if (status != 0) {
    Die(fmt::format("smtp-source with {} session(s) failed (exit {}):\n{}", connections, status,
                    Tail((dir / "smtp-source.log").string())));
  }
  run.rate = static_cast<double>(messages) / run.seconds;
  run.cpu_per_1k = (Seconds(usage.ru_utime) + Seconds(usage.ru_stime)) / (static_cast<double>(messages) / 1000);
  return run;
}

pid_t StartSink(const fs::path& dir, const std::string& tool, std::uint16_t& port) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    port = FreePort();
    // No -c: its counter is one endless line. -u: smtp-sink refuses to run as root without it.
    pid_t pid = Spawn({tool, "-u", "postfix", fmt::format("127.0.0.1:{}", port), "1024"}, -1, "/dev/null",
                      (dir / "smtp-sink.log").string());
    for (int i = 0; i < 50; ++i) {
      if (Greets(port)) return pid;
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) break;  // exited: the port was taken meanwhile?
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid, SIGTERM);
    Wait(pid, nullptr);
  }
  Die("smtp-sink did not start:\n" + Tail((dir / "smtp-sink.log").string()));
}

void StopSinkAndClean(const fs::path& dir, bool keep) {
  if (g_sink > 0) kill(g_sink, SIGTERM);
  Wait(g_sink, nullptr);
  g_sink = 0;
  if (!keep || g_stop) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  } else {
    std::printf("kept %s\n", dir.c_str());
  }
}

// herald alone at growing list sizes (--scale).
int Scale(const Options& options, const fs::path& dir) {
  const int c = options.connections.front();
  std::printf("scale: herald alone, %d connection(s), one run per size\n", c);
  std::printf("\n| recipients | herald msg/s | CPU s per 1k msg | peak RSS | import of the list | smtp-sink CPU s per 1k "
              "|\n| ---: | ---: | ---: | ---: | ---: | ---: |\n");
  std::fflush(stdout);
  for (long n : options.scale) {
    if (g_stop) break;
    WriteRecipients(dir / "recipients.csv", n);
    double sink_cpu = 0;
    HeraldRun h = RunHerald(dir, c, n, sink_cpu);
    if (g_stop) break;
    std::printf("| %s | %s | %.3f | %.1f MB | %.2f s | %.3f |\n", Group(static_cast<double>(n)).c_str(),
                Group(h.rate).c_str(), h.cpu_per_1k, h.rss_mb, h.import_seconds,
                sink_cpu / (static_cast<double>(n) / 1000));
    std::fflush(stdout);
  }
  StopSinkAndClean(dir, options.keep);
  if (g_stop) {
    std::fprintf(stderr, "smtp_bench: interrupted\n");
    return 130;
  }
  return 0;
}

int Drive(const Options& options) {
  const std::string sink_tool = FindTool("smtp-sink");
  const std::string source_tool = FindTool("smtp-source");
  std::string tmp = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
  std::string pattern = tmp + "/herald-smtp-bench.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) Die(fmt::format("mkdtemp: {}", std::strerror(errno)));
  const fs::path dir = pattern;

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGHUP, OnSignal);
  signal(SIGPIPE, SIG_IGN);

  std::uint16_t port = 0;
  g_sink = StartSink(dir, sink_tool, port);
  WriteFile(dir / "body.txt", kText);
  WriteFile(dir / "body.html", kHtml);
  const long messages = options.scale.empty() ? options.messages : options.scale.front();
  WriteRecipients(dir / "recipients.csv", messages);
  for (int c : options.connections) {
    WriteFile(dir / fmt::format("task-{}.toml", c), fmt::format(fmt::runtime(kTask), fmt::arg("connections", c)));
    WriteFile(dir / fmt::format("accounts-{}.toml", c),
              fmt::format(fmt::runtime(kAccounts), fmt::arg("port", port), fmt::arg("connections", c)));
  }
  const std::size_t size = MessageSize(dir / fmt::format("task-{}.toml", options.connections.front()));
  std::printf("SMTP benchmark: %s personalised messages of ~%zu bytes (text + HTML, 5 placeholders) to smtp-sink "
              "on 127.0.0.1:%u; herald = full engine (SQLite store, SMTP transport); smtp-source -d -l %zu; "
              "%d runs each, medians\n",
              Group(static_cast<double>(messages)).c_str(), size, port, size, options.runs);
  std::fflush(stdout);
  if (!options.scale.empty()) return Scale(options, dir);

  struct Row {
    int connections;
    double herald, source, ratio, cpu, rss, import, source_cpu, sink_herald, sink_source;
  };
  std::vector<Row> rows;
  for (int c : options.connections) {
    std::vector<double> herald_rates, source_rates, cpus, rsses, imports, source_cpus, sink_h, sink_s;
    for (int run = 1; run <= options.runs && !g_stop; ++run) {
      HeraldRun h;
      SourceRun s;
      double sink_cpu_h = 0, sink_cpu_s = 0;
      if (run % 2 == 1) {
        h = RunHerald(dir, c, options.messages, sink_cpu_h);
        if (!g_stop) s = RunSmtpSource(dir, source_tool, c, options.messages, size, port, sink_cpu_s);
      } else {
        s = RunSmtpSource(dir, source_tool, c, options.messages, size, port, sink_cpu_s);
        if (!g_stop) h = RunHerald(dir, c, options.messages, sink_cpu_h);
      }
      if (g_stop) break;
      const double k = static_cast<double>(options.messages) / 1000;
      std::printf("  %2d connection(s), run %d: herald %6s msg/s (%.2f s, CPU %.3f s/1k, peak RSS %.1f MB, import "
                  "%.2f s)  smtp-source %6s msg/s (%.2f s, CPU %.3f s/1k)  sink CPU s/1k: %.3f / %.3f\n",
                  c, run, Group(h.rate).c_str(), h.seconds, h.cpu_per_1k, h.rss_mb, h.import_seconds,
                  Group(s.rate).c_str(), s.seconds, s.cpu_per_1k, sink_cpu_h / k, sink_cpu_s / k);
      std::fflush(stdout);
      herald_rates.push_back(h.rate);
      source_rates.push_back(s.rate);
      cpus.push_back(h.cpu_per_1k);
      rsses.push_back(h.rss_mb);
      imports.push_back(h.import_seconds);
      source_cpus.push_back(s.cpu_per_1k);
      sink_h.push_back(sink_cpu_h / k);
      sink_s.push_back(sink_cpu_s / k);
    }
    if (g_stop) break;
    double herald = Median(herald_rates);
    double source = Median(source_rates);
    rows.push_back({c, herald, source, herald / source, Median(cpus), Median(rsses), Median(imports),
                    Median(source_cpus), Median(sink_h), Median(sink_s)});
  }

  StopSinkAndClean(dir, options.keep);
  if (g_stop) {
    std::fprintf(stderr, "smtp_bench: interrupted\n");
    return 130;
  }

  std::printf("\n| connections | herald msg/s | smtp-source msg/s | herald / smtp-source | herald CPU s per 1k msg "
              "| herald peak RSS | import of the list |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const Row& row : rows) {
    std::printf("| %d | %s | %s | %.2f | %.3f | %.1f MB | %.2f s |\n", row.connections, Group(row.herald).c_str(),
                Group(row.source).c_str(), row.ratio, row.cpu, row.rss, row.import);
  }
  std::printf("(smtp-source CPU s per 1k msg:");
  for (const Row& row : rows) std::printf(" %.3f at %d;", row.source_cpu, row.connections);
  std::printf(" smtp-sink CPU s per 1k msg, herald / smtp-source:");
  for (const Row& row : rows) std::printf(" %.3f / %.3f at %d;", row.sink_herald, row.sink_source, row.connections);
  std::printf(")\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--one-run") return OneRun(argv[2], argv[3], argv[4]);
  return Drive(ParseOptions(argc, argv));
}
