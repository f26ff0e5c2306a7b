#include "config/secret.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace herald {

std::string SecretRef::Describe() const {
  if (!env.empty()) return fmt::format("environment variable {}", env);
  if (!file.empty()) return fmt::format("file {}", file);
  return "nowhere (no secret configured)";
}

Result<std::string> ReadSecret(const SecretRef& ref) {
  std::string secret;
  if (!ref.env.empty()) {
    const char* value = std::getenv(ref.env.c_str());
    if (value == nullptr || *value == '\0') {
      return NotFound(fmt::format("the environment variable {} is not set or empty", ref.env));
    }
    secret = value;
  } else if (!ref.file.empty()) {
    std::error_code ec;
    if (std::filesystem::is_directory(ref.file, ec)) {
      return InvalidArgument(fmt::format("the secret file {} is a folder; expected a file holding the secret", ref.file));
    }
    std::ifstream in(ref.file, std::ios::binary);
    if (!in) return NotFound(fmt::format("cannot read the secret file {}", ref.file));
    std::stringstream buffer;
    buffer << in.rdbuf();
    secret = buffer.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.empty()) return InvalidArgument(fmt::format("the secret file {} is empty", ref.file));
  } else {
    return NotFound("no secret is configured");
  }
  if (secret.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
    return InvalidArgument(fmt::format("the secret in {} contains a line break or NUL", ref.Describe()));
  }
  return secret;
}

}  // namespace herald
