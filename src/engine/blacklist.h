// Blacklist: the addresses a task must never send to, read from files of one entry per line —
// an address ("someone@example.com"), a whole domain ("*@example.com" or "example.com"). Blank
// lines and lines starting with '#' are ignored. Matching is case-insensitive and uses the same
// address grammar as the recipient list (IDNs as A-labels). Lookups are hash-based, so a list of
// millions of entries costs one probe per recipient. Immutable after loading; thread-safe.
#pragma once

#include <string>
#include <unordered_set>
#include <vector>

#include "address/address.h"
#include "core/status.h"

namespace herald {

class Blacklist {
 public:
  // Reads every file. Errors name the file and line of an entry that is neither an address nor
  // a domain.
  static Result<Blacklist> Load(const std::vector<std::string>& files);

  bool Matches(const Address& address) const;
  bool empty() const { return addresses_.empty() && domains_.empty(); }
  std::size_t size() const { return addresses_.size() + domains_.size(); }

 private:
  std::unordered_set<std::string> addresses_;  // DedupKey()
  std::unordered_set<std::string> domains_;    // lowercase A-labels
};

}  // namespace herald
