// Content-Range parsing (content_range.h).
#include "src/store/content_range.h"

#include <cctype>

namespace ickpt {
namespace {

// A run of 1 to 19 decimal digits: any such number fits in 63 bits.
std::optional<uint64_t> ParseNumber(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<ContentRange> ParseContentRange(std::string_view value) {
  // libcurl hands over the value without the header name; trailing white space may remain.
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r' ||
                            value.back() == '\n')) {
    value.remove_suffix(1);
  }
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  const size_t space = value.find(' ');
  if (space == std::string_view::npos || !EqualsIgnoreCase(value.substr(0, space), "bytes")) {
    return std::nullopt;
  }
  value.remove_prefix(space);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  const size_t slash = value.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view range = value.substr(0, slash);
  const std::string_view total_text = value.substr(slash + 1);
  ContentRange out;
  if (total_text != "*") {
    out.total = ParseNumber(total_text);
    if (!out.total.has_value()) return std::nullopt;
  }
  if (range == "*") {
    if (!out.total.has_value()) return std::nullopt;  // "bytes */*" says nothing
    return out;
  }
  const size_t dash = range.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  out.first = ParseNumber(range.substr(0, dash));
  out.last = ParseNumber(range.substr(dash + 1));
  if (!out.first.has_value() || !out.last.has_value() || *out.first > *out.last) {
    return std::nullopt;
  }
  if (out.total.has_value() && *out.last >= *out.total) return std::nullopt;
  return out;
}

}  // namespace ickpt
