#include "engine/blacklist.h"

#include <fstream>

#include <fmt/format.h>

#include "core/text.h"

namespace herald {

Result<Blacklist> Blacklist::Load(const std::vector<std::string>& files) {
  Blacklist list;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return NotFound(fmt::format("cannot open the blacklist {}", file));
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      std::string_view entry = TrimBlanks(line);
      if (entry.empty() || entry[0] == '#') continue;
      bool whole_domain = entry.rfind("*@", 0) == 0 || entry.find('@') == std::string_view::npos;
      if (whole_domain) {
        std::string_view domain = entry.rfind("*@", 0) == 0 ? entry.substr(2) : entry;
        Result<Address> probe = ParseAddress("postmaster@" + std::string(domain));
        if (!probe.ok()) {
          return InvalidArgument(fmt::format("{}:{}: \"{}\" is neither an address nor a domain: {}", file, number,
                                             Printable(entry), probe.status().message()));
        }
        list.domains_.insert(probe->domain);
      } else {
        Result<Address> address = ParseAddress(entry);
        if (!address.ok()) {
          return InvalidArgument(fmt::format("{}:{}: {}", file, number, address.status().message()));
        }
        list.addresses_.insert(address->DedupKey());
      }
    }
    if (in.bad()) return IoError(fmt::format("read error in the blacklist {}", file));
  }
  return list;
}

bool Blacklist::Matches(const Address& address) const {
  if (domains_.count(address.domain) > 0) return true;
  return !addresses_.empty() && addresses_.count(address.DedupKey()) > 0;
}

}  // namespace herald
