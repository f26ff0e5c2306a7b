#include "smtp/helo_name.h"

#include <netdb.h>
#include <unistd.h>

#include <fmt/format.h>

namespace herald {
namespace {

bool GreetsWithLocalHostName(const AccountConfig& account) {
  return (account.kind == AccountKind::kSmtp || account.kind == AccountKind::kGmail) && account.helo_name.empty();
}

}  // namespace

std::string LocalHostName() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost.localdomain";
  addrinfo hints{};
  hints.ai_flags = AI_CANONNAME;
  addrinfo* info = nullptr;
  std::string fqdn = name;
  if (getaddrinfo(name, nullptr, &hints, &info) == 0 && info != nullptr) {
    if (info->ai_canonname != nullptr && std::string_view(info->ai_canonname).find('.') != std::string_view::npos) {
      fqdn = info->ai_canonname;
    }
    freeaddrinfo(info);
  }
  return fqdn;
}

std::optional<std::string> HeloNameWarning(const AccountConfig& account, std::string_view local_host_name) {
  if (!GreetsWithLocalHostName(account) || local_host_name.find('.') != std::string_view::npos) return std::nullopt;
  return fmt::format(
      "{}: account \"{}\" sets no helo_name, so herald greets its server with this machine's name, \"EHLO {}\"; "
      "many servers refuse a bare name without a dot or score it as spam: set helo_name to this machine's fully "
      "qualified name, e.g. helo_name = \"mail.example.org\"",
      account.origin, account.name, local_host_name);
}

std::optional<std::string> HeloNameWarningForThisMachine(const AccountConfig& account) {
  if (!GreetsWithLocalHostName(account)) return std::nullopt;
  return HeloNameWarning(account, LocalHostName());
}

}  // namespace herald
