// S3's XML replies and the multi-object delete request (s3_xml.h), over pugixml.
//
// pugixml is used as a tokenizer and tree builder only. It parses with parse_cdata and
// parse_ws_pcdata and nothing else: no entity decoding (parse_escapes), because pugixml decodes
// "&#0;" into a NUL that ends its C strings (a key would be silently cut) and leaves an unknown
// "&name;" as it is; no line-end normalisation (parse_eol), so that a key comes back byte for byte;
// whitespace-only text kept (parse_ws_pcdata), or a key " " would read as empty; CDATA kept
// (parse_cdata), or its text would be dropped. Text() below then decodes the text of the elements
// that are read, strictly. pugixml has no DTD support: it skips a DOCTYPE and never expands or
// fetches an entity.
//
// Thread safety: pure functions.
#include "src/store/s3_xml.h"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <pugixml.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "src/util/str.h"

namespace ickpt::s3 {
namespace {

constexpr std::string_view kListReply = "ListObjectsV2 reply";
constexpr std::string_view kErrorReply = "S3 error reply";
constexpr std::string_view kDeleteReply = "DeleteObjects reply";
constexpr std::string_view kDeleteRequest = "DeleteObjects request";

constexpr std::string_view kS3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/";

constexpr unsigned kParseOptions = pugi::parse_cdata | pugi::parse_ws_pcdata;

absl::Status Malformed(std::string_view kind, std::string_view what) {
  return absl::InvalidArgumentError(StrCat(kind, ": ", what));
}

// Text from the document, for messages: C-escaped, at most 64 bytes.
std::string Quote(std::string_view text) {
  std::string out = absl::CHexEscape(ToAbsl(text.substr(0, 64)));
  if (text.size() > 64) out += "...";
  return StrCat("\"", out, "\"");
}

// "ListBucketResult" for "ListBucketResult" and "s3:ListBucketResult" alike. The namespace URI is
// not checked: RGW and other S3 servers differ in whether they send one.
std::string_view LocalName(const pugi::xml_node& node) {
  std::string_view name = node.name();
  if (const size_t colon = name.rfind(':'); colon != std::string_view::npos) {
    name.remove_prefix(colon + 1);
  }
  return name;
}

bool IsXmlSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view StripXmlSpace(std::string_view s) {
  while (!s.empty() && IsXmlSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsXmlSpace(s.back())) s.remove_suffix(1);
  return s;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The code point of a character reference's body ("#65", "#x41"), if it names a Unicode scalar
// value. Leading zeros are allowed; digits are read only while the value stays in range, so a
// long run of them cannot overflow.
std::optional<uint32_t> CharReference(std::string_view body) {
  if (body.size() < 2 || body[0] != '#') return std::nullopt;
  const bool hex = body[1] == 'x';
  std::string_view digits = body.substr(hex ? 2 : 1);
  if (digits.empty()) return std::nullopt;
  uint32_t cp = 0;
  for (char c : digits) {
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint32_t>(c - '0');
    } else if (hex && c >= 'a' && c <= 'f') {
      d = static_cast<uint32_t>(c - 'a' + 10);
    } else if (hex && c >= 'A' && c <= 'F') {
      d = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    cp = cp * (hex ? 16 : 10) + d;
    if (cp > 0x10FFFF) return std::nullopt;
  }
  if (cp >= 0xD800 && cp <= 0xDFFF) return std::nullopt;  // a surrogate: no UTF-8 for it
  return cp;
}

// Decodes the references in a text node: the five predefined entities and character references.
// Anything else after '&' is an error: a server that forgot to escape '&' wrote an ambiguous key.
absl::StatusOr<std::string> Unescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  size_t i = 0;
  while (i < raw.size()) {
    const size_t amp = raw.find('&', i);
    if (amp == std::string_view::npos) {
      out.append(raw.substr(i));
      break;
    }
    out.append(raw.substr(i, amp - i));
    // The longest reference worth reading: "#x" and 6 hex digits, with some leading zeros.
    constexpr size_t kMaxReference = 16;
    const size_t semicolon = raw.substr(amp + 1, kMaxReference + 1).find(';');
    if (semicolon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("'&' without a reference: ", Quote(raw.substr(amp, 20))));
    }
    const std::string_view body = raw.substr(amp + 1, semicolon);
    if (body == "amp") {
      out.push_back('&');
    } else if (body == "lt") {
      out.push_back('<');
    } else if (body == "gt") {
      out.push_back('>');
    } else if (body == "quot") {
      out.push_back('"');
    } else if (body == "apos") {
      out.push_back('\'');
    } else if (std::optional<uint32_t> cp = CharReference(body)) {
      AppendUtf8(*cp, out);
    } else {
      return absl::InvalidArgumentError(
          StrCat("an unknown or invalid reference ", Quote(raw.substr(amp, semicolon + 2))));
    }
    i = amp + semicolon + 2;
  }
  return out;
}

// The text of an element that holds only text: its text and CDATA children, concatenated (a
// comment splits the text in two). An element inside is an error.
absl::StatusOr<std::string> Text(const pugi::xml_node& element) {
  std::string out;
  for (pugi::xml_node child = element.first_child(); child; child = child.next_sibling()) {
    switch (child.type()) {
      case pugi::node_pcdata: {
        absl::StatusOr<std::string> text = Unescape(child.value());
        if (!text.ok()) return text.status();
        out += *text;
        break;
      }
      case pugi::node_cdata:
        out += child.value();
        break;
      case pugi::node_element:
        return absl::InvalidArgumentError(StrCat("an element ", Quote(child.name()), " inside"));
      default:  // comments and processing instructions are not kept (kParseOptions)
        break;
    }
  }
  return out;
}

// One field of an element: its text, at most once.
class Field {
 public:
  explicit Field(std::string_view name) : name_(name) {}

  // Reads `element` (named name_) into the field; an error for a second one, or bad text.
  absl::Status Set(const pugi::xml_node& element) {
    if (text_.has_value()) {
      return absl::InvalidArgumentError(StrCat("has more than one <", name_, ">"));
    }
    absl::StatusOr<std::string> text = Text(element);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          StrCat("has a <", name_, "> with ", text.status().message()));
    }
    text_ = *std::move(text);
    return absl::OkStatus();
  }

  std::string_view name() const { return name_; }
  bool present() const { return text_.has_value(); }
  const std::string& text() const { return *text_; }
  std::string Take() { return text_.has_value() ? std::move(*text_) : std::string(); }

 private:
  std::string_view name_;
  std::optional<std::string> text_;
};

// Reads an element's children into `fields` (matched by local name), ignoring the others.
// Returns the error of the first field that fails, as "<where>: <error>".
absl::Status ReadFields(const pugi::xml_node& element, std::string_view kind,
                        std::string_view where, std::initializer_list<Field*> fields) {
  for (pugi::xml_node child = element.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    const std::string_view name = LocalName(child);
    for (Field* field : fields) {
      if (field->name() != name) continue;
      if (absl::Status s = field->Set(child); !s.ok()) {
        return Malformed(kind, StrCat(where, " ", s.message()));
      }
      break;
    }
  }
  return absl::OkStatus();
}

// A required, non-empty field.
absl::Status Require(const Field& field, std::string_view kind, std::string_view where) {
  if (!field.present()) return Malformed(kind, StrCat(where, " has no <", field.name(), ">"));
  if (field.text().empty())
    return Malformed(kind, StrCat(where, " has an empty <", field.name(), ">"));
  return absl::OkStatus();
}

// Parses `xml` into `doc` and returns its root element, which must be named `root_name`.
absl::StatusOr<pugi::xml_node> Load(pugi::xml_document& doc, std::string_view xml,
                                    std::string_view kind, std::string_view root_name) {
  if (xml.size() > kMaxXmlBytes) {
    return Malformed(kind, StrCat(xml.size(), " bytes, above the limit of ", kMaxXmlBytes));
  }
  if (const size_t nul = xml.find('\0'); nul != std::string_view::npos) {
    return Malformed(kind, StrCat("not XML: a NUL byte at offset ", nul));
  }
  if (const size_t tags = static_cast<size_t>(std::count(xml.begin(), xml.end(), '<'));
      tags > kMaxXmlMarkup) {
    return Malformed(kind, StrCat(tags, " tags, above the limit of ", kMaxXmlMarkup));
  }
  // load_buffer copies the bytes (they need no terminating NUL). UTF-8 is what S3 sends; forcing
  // it keeps pugixml from converting a document that merely looks like UTF-16.
  const pugi::xml_parse_result parsed =
      doc.load_buffer(xml.data(), xml.size(), kParseOptions, pugi::encoding_utf8);
  if (!parsed) {
    return Malformed(kind, StrCat("not XML: ", parsed.description(), " at offset ", parsed.offset));
  }
  // Only elements count at the top: pugixml drops text outside the root element (and keeps
  // CDATA there), which cannot hide a field, since the decoders read only the root's content.
  pugi::xml_node root;
  for (pugi::xml_node node = doc.first_child(); node; node = node.next_sibling()) {
    if (node.type() != pugi::node_element) continue;
    if (root) return Malformed(kind, "not XML: more than one root element");
    root = node;
  }
  if (!root) return Malformed(kind, "not XML: no root element");
  if (LocalName(root) != root_name) {
    std::string what =
        StrCat("the root element is ", Quote(root.name()), ", not <", root_name, ">");
    if (LocalName(root) == "Error") {
      // The server answered with an error: say which, so that a caller that did not look at the
      // HTTP status still reports something useful.
      Field code("Code"), message("Message");
      if (ReadFields(root, kind, "<Error>", {&code, &message}).ok() && code.present()) {
        what = StrCat("an S3 error reply: ", Quote(code.text()), " ", Quote(message.Take()));
      }
    }
    return Malformed(kind, what);
  }
  return root;
}

// Digits only (no sign, no space), at most 2^64 - 1.
std::optional<uint64_t> ParseU64(std::string_view s) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

bool Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// True for YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm), the fraction 1 to 9 digits. The shape
// is checked here because absl::ParseTime alone is lenient: it skips spaces, takes any number of
// year digits, a lower-case 't', and "infinite-future".
bool IsIso8601(std::string_view s) {
  if (!(Digits(s, 0, 4) && s.size() > 19 && s[4] == '-' && Digits(s, 5, 2) && s[7] == '-' &&
        Digits(s, 8, 2) && s[10] == 'T' && Digits(s, 11, 2) && s[13] == ':' && Digits(s, 14, 2) &&
        s[16] == ':' && Digits(s, 17, 2))) {
    return false;
  }
  size_t pos = 19;
  if (s[pos] == '.') {
    size_t digits = 0;
    while (pos + 1 + digits < s.size() && Digits(s, pos + 1 + digits, 1)) ++digits;
    if (digits < 1 || digits > 9) return false;
    pos += 1 + digits;
  }
  const std::string_view zone = s.substr(pos);
  if (zone == "Z") return true;
  return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && Digits(zone, 1, 2) &&
         zone[3] == ':' && Digits(zone, 4, 2);
}

std::optional<absl::Time> ParseIso8601(std::string_view s) {
  if (!IsIso8601(s)) return std::nullopt;
  absl::Time t;
  std::string err;
  // %Ez takes "Z" as well as "+hh:mm"; ParseTime checks the fields' ranges (no February 30).
  if (!absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S%Ez", ToAbsl(s), &t, &err)) return std::nullopt;
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) return std::nullopt;
  return t;
}

absl::StatusOr<ListedObject> DecodeContents(const pugi::xml_node& contents, size_t number) {
  const std::string where = StrCat("<Contents> #", number);
  Field key("Key"), size("Size"), last_modified("LastModified");
  if (absl::Status s = ReadFields(contents, kListReply, where, {&key, &size, &last_modified});
      !s.ok()) {
    return s;
  }
  for (const Field* f : {&key, &size, &last_modified}) {
    if (absl::Status s = Require(*f, kListReply, where); !s.ok()) return s;
  }
  ListedObject object;
  const std::optional<uint64_t> n = ParseU64(StripXmlSpace(size.text()));
  if (!n.has_value()) {
    return Malformed(
        kListReply,
        StrCat(where, " has a <Size> that is not a decimal 64-bit size: ", Quote(size.text())));
  }
  object.size = *n;
  const std::optional<absl::Time> t = ParseIso8601(StripXmlSpace(last_modified.text()));
  if (!t.has_value()) {
    return Malformed(kListReply,
                     StrCat(where, " has a <LastModified> that is not an ISO 8601 time: ",
                            Quote(last_modified.text())));
  }
  object.last_modified = *t;
  object.key = key.Take();
  return object;
}

absl::StatusOr<ErrorReply> DecodeErrorElement(const pugi::xml_node& error) {
  Field code("Code"), message("Message"), resource("Resource"), request_id("RequestId");
  if (absl::Status s =
          ReadFields(error, kErrorReply, "<Error>", {&code, &message, &resource, &request_id});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Require(code, kErrorReply, "<Error>"); !s.ok()) return s;
  return ErrorReply{code.Take(), message.Take(), resource.Take(), request_id.Take()};
}

// The length of the UTF-8 sequence at s[i] if it encodes a character XML 1.0 can carry
// (https://www.w3.org/TR/xml/#charsets), else 0.
size_t XmlCharLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return (b0 >= 0x20 || b0 == '\t' || b0 == '\n' || b0 == '\r') ? 1 : 0;
  size_t n;
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return 0;  // a continuation byte, an overlong lead (C0, C1) or beyond U+10FFFF
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  const uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  if (cp < min || cp > 0x10FFFF) return 0;  // overlong, or too large
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF) return 0;
  return n;
}

// Appends `key` escaped for element text, or returns the offset of the first byte that XML 1.0
// cannot carry.
std::optional<size_t> AppendEscaped(std::string_view key, std::string& out) {
  size_t i = 0;
  while (i < key.size()) {
    const size_t n = XmlCharLength(key, i);
    if (n == 0) return i;
    switch (key[i]) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':  // "]]>" is not allowed in text
        out += "&gt;";
        break;
      case '\t':
        out += "&#9;";
        break;
      case '\n':
        out += "&#10;";
        break;
      case '\r':  // a raw CR would be read back as LF (XML's line-end normalisation)
        out += "&#13;";
        break;
      default:
        out.append(key.substr(i, n));
    }
    i += n;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<ListObjectsReply> DecodeListObjectsReply(std::string_view xml) {
  pugi::xml_document doc;
  absl::StatusOr<pugi::xml_node> root = Load(doc, xml, kListReply, "ListBucketResult");
  if (!root.ok()) return root.status();
  ListObjectsReply reply;
  Field is_truncated("IsTruncated"), token("NextContinuationToken"), encoding("EncodingType");
  if (absl::Status s =
          ReadFields(*root, kListReply, "<ListBucketResult>", {&is_truncated, &token, &encoding});
      !s.ok()) {
    return s;
  }
  if (encoding.present()) {
    return Malformed(kListReply, StrCat("keys are encoded (<EncodingType> ", Quote(encoding.text()),
                                        "), which this client never asks for"));
  }
  if (absl::Status s = Require(is_truncated, kListReply, "<ListBucketResult>"); !s.ok()) return s;
  const std::string_view truncated = StripXmlSpace(is_truncated.text());
  if (truncated != "true" && truncated != "false") {
    return Malformed(kListReply, StrCat("<IsTruncated> is neither \"true\" nor \"false\": ",
                                        Quote(is_truncated.text())));
  }
  reply.is_truncated = truncated == "true";
  if (reply.is_truncated) {
    // Without the token the rest of the listing cannot be asked for: a truncated listing taken
    // for a whole one would make objects look absent.
    if (absl::Status s = Require(token, kListReply, "truncated <ListBucketResult>"); !s.ok()) {
      return s;
    }
  }
  reply.next_continuation_token = token.Take();
  size_t number = 0;
  for (pugi::xml_node child = root->first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element || LocalName(child) != "Contents") continue;
    absl::StatusOr<ListedObject> object = DecodeContents(child, ++number);
    if (!object.ok()) return object.status();
    reply.objects.push_back(*std::move(object));
  }
  return reply;
}

absl::StatusOr<ErrorReply> DecodeErrorReply(std::string_view xml) {
  pugi::xml_document doc;
  absl::StatusOr<pugi::xml_node> root = Load(doc, xml, kErrorReply, "Error");
  if (!root.ok()) return root.status();
  return DecodeErrorElement(*root);
}

absl::StatusOr<DeleteReply> DecodeDeleteReply(std::string_view xml) {
  pugi::xml_document doc;
  absl::StatusOr<pugi::xml_node> root = Load(doc, xml, kDeleteReply, "DeleteResult");
  if (!root.ok()) return root.status();
  DeleteReply reply;
  size_t deleted_number = 0, error_number = 0;
  for (pugi::xml_node child = root->first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    const std::string_view name = LocalName(child);
    if (name == "Deleted") {
      const std::string where = StrCat("<Deleted> #", ++deleted_number);
      Field key("Key");
      if (absl::Status s = ReadFields(child, kDeleteReply, where, {&key}); !s.ok()) return s;
      if (absl::Status s = Require(key, kDeleteReply, where); !s.ok()) return s;
      reply.deleted.push_back(key.Take());
    } else if (name == "Error") {
      const std::string where = StrCat("<Error> #", ++error_number);
      Field key("Key"), code("Code"), message("Message");
      if (absl::Status s = ReadFields(child, kDeleteReply, where, {&key, &code, &message});
          !s.ok()) {
        return s;
      }
      if (absl::Status s = Require(key, kDeleteReply, where); !s.ok()) return s;
      if (absl::Status s = Require(code, kDeleteReply, where); !s.ok()) return s;
      reply.failures.push_back(DeleteFailure{key.Take(), code.Take(), message.Take()});
    }
  }
  return reply;
}

absl::StatusOr<std::string> EncodeDeleteRequest(const std::vector<std::string>& keys, bool quiet) {
  if (keys.empty()) return Malformed(kDeleteRequest, "no keys");
  if (keys.size() > kMaxDeleteKeys) {
    return Malformed(kDeleteRequest,
                     StrCat(keys.size(), " keys, above S3's limit of ", kMaxDeleteKeys));
  }
  std::string out = StrCat(R"(<?xml version="1.0" encoding="UTF-8"?>)", "\n<Delete xmlns=\"",
                           kS3Namespace, "\"><Quiet>", quiet ? "true" : "false", "</Quiet>");
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].empty()) return Malformed(kDeleteRequest, StrCat("key #", i + 1, " is empty"));
    out += "<Object><Key>";
    if (std::optional<size_t> bad = AppendEscaped(keys[i], out)) {
      return Malformed(kDeleteRequest,
                       StrCat("key #", i + 1, " ", Quote(keys[i]), " has a byte at offset ", *bad,
                              " that is not UTF-8 or not a character XML 1.0 can carry"));
    }
    out += "</Key></Object>";
  }
  out += "</Delete>";
  return out;
}

}  // namespace ickpt::s3
