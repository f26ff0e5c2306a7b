#include "config/task_file.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>

namespace herald {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxIdBytes = 128;
constexpr std::size_t kHashDigits = 8;

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.';
}

// FNV-1a (64 bits), its low 32 bits in hex: the same on every machine and build.
std::string ShortHash(const std::string& text) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  char hex[kHashDigits + 1];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(hash & 0xffffffffULL));
  return hex;
}

fs::path StoreFolder(const std::string& store_file) {
  return fs::absolute(store_file).lexically_normal().parent_path();
}

}  // namespace

std::string TaskFileInStore(const std::string& task_path, const std::string& store_file) {
  const fs::path task = fs::absolute(task_path).lexically_normal();
  const fs::path relative = task.lexically_relative(StoreFolder(store_file));
  if (!relative.empty() && *relative.begin() != "..") return relative.generic_string();
  return task.generic_string();
}

std::string TaskFileFromStore(const std::string& stored, const std::string& store_file) {
  const fs::path path(stored);
  if (path.is_absolute()) return path.string();
  return (StoreFolder(store_file) / path).lexically_normal().string();
}

std::string DefaultTaskId(const std::string& task_path, const std::string& store_file) {
  const std::string place = TaskFileInStore(task_path, store_file);
  const fs::path path(place);
  const bool inside = path.is_relative();
  std::string id;
  if (inside) {
    for (const fs::path& folder : path.parent_path()) id += folder.string() + "-";
  }
  id += path.stem().string();
  bool hashed = !inside || id.size() > kMaxIdBytes;
  for (char& c : id) {
    if (!IsIdChar(c)) {
      c = '_';
      hashed = true;
    }
  }
  if (id.empty() || id[0] == '.') {
    id.insert(0, "_");
    hashed = true;
  }
  if (hashed) {
    id.resize(std::min(id.size(), kMaxIdBytes - kHashDigits - 1));
    id += "-" + ShortHash(place);
  }
  return id;
}

}  // namespace herald
