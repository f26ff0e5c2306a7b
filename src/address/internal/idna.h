// IDNA2008 conversion of domain labels to A-labels, wrapping libidn2 (a C library that returns
// malloc'd strings and integer error codes) behind a Result. Private to the address module.
// Thread-safe: libidn2 keeps no mutable global state.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace herald::address_internal {

// Converts `labels` — one or more dot-separated labels, valid UTF-8, each either a U-label or an
// ASCII label (an "xn--" A-label is decoded and checked too) — to lowercase A-label form by the
// IDNA2008 lookup rules (RFC 5891 §5) with UTS #46 non-transitional mapping, so "Bücher" and
// "bücher" both give "xn--bcher-kva" and "straße" keeps its ß ("xn--strae-oqa").
//
// The output is not re-checked here against RFC 5321's letter-digit-hyphen rule: UTS #46 mapping
// without STD3 rules lets '_' and ' ' through, and STD3 rules would silently drop them ("a_b" →
// "ab"), which must never happen to an address. The caller checks the output.
//
// Errors carry libidn2's reason ("string contains a disallowed character"), without the input.
Result<std::string> ToALabels(std::string_view labels);

}  // namespace herald::address_internal
