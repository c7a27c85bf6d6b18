// The XML an S3 object store client exchanges with the server: ListObjectsV2 replies, error
// replies, multi-object delete replies, and the body of a multi-object delete request. Kept apart
// from the HTTP transport (libcurl) so that every decoder can be tested without a server and fuzzed
// (fuzz/s3_list_reply_fuzz.cc, fuzz/s3_error_reply_fuzz.cc, fuzz/s3_delete_reply_fuzz.cc).
//
// What the decoders accept: replies as AWS S3 and Ceph RGW (16) write them, with or without the
// namespace xmlns="http://s3.amazonaws.com/doc/2006-03-01/" (or a prefixed one) and the XML
// declaration. Elements are matched by local name; elements a decoder does not know are ignored,
// since S3 keeps adding fields (ChecksumAlgorithm, RestoreStatus, ...). Text is decoded by these
// functions, not by pugixml: the five predefined entities, and numeric character references to any
// Unicode scalar value. That includes the C0 controls, which XML 1.0 forbids but AWS writes for
// keys holding them (&#x1;): a listing of such a key must still decode. Keys are returned exactly
// as the document spells them; line ends are not normalised (a raw CR in a key stays a CR).
//
// Errors: every decoder returns InvalidArgument, "<reply kind>: <what was wrong>", for input that
// is not the reply it expects: not XML ("not XML: <pugixml's description> at offset N"), another
// root element, a required field missing, repeated or malformed, a document above kMaxXmlBytes or
// with more than kMaxXmlMarkup tags (refused before parsing, so that memory stays bounded: pugixml
// allocates about 64 bytes a node). A decoder never returns a partly decoded reply, never crashes,
// never reads outside its input and never expands an entity (pugixml knows no DTD entities; an
// undeclared "&name;" is an error). The input need not be NUL-terminated; a NUL byte in it is an
// error (XML cannot hold one, and pugixml's strings would end there).
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ickpt::s3 {

// The largest document a decoder parses: a ListObjectsV2 page of 1000 keys (S3's and RGW's most)
// is well under 1 MiB.
inline constexpr size_t kMaxXmlBytes = size_t{64} << 20;
// The most '<' a decoder accepts in a document (each is at most one node): bounds pugixml's node
// memory to about 64 MiB whatever the bytes. A page of 1000 keys has about 15,000.
inline constexpr size_t kMaxXmlMarkup = size_t{1} << 20;
// S3's limit on the keys of one multi-object delete.
inline constexpr size_t kMaxDeleteKeys = 1000;

// One <Contents> entry of a listing.
struct ListedObject {
  std::string key;
  uint64_t size = 0;
  absl::Time last_modified = absl::UnixEpoch();
};

// A ListObjectsV2 reply (<ListBucketResult>). CommonPrefixes, KeyCount, ETags, owners and storage
// classes are not decoded.
struct ListObjectsReply {
  std::vector<ListedObject> objects;  // in document order (S3 sends them in key order)
  bool is_truncated = false;
  std::string next_continuation_token;  // not empty when is_truncated
};

// Decodes a ListObjectsV2 reply. Each <Contents> must hold exactly one non-empty <Key>, one <Size>
// (decimal digits, at most 2^64 - 1) and one <LastModified> (ISO 8601: 2026-12-08T01:02:03.456Z,
// the fraction optional, "Z" or an offset "+hh:mm"). <IsTruncated> ("true" or "false") is
// required, and a truncated reply must carry a non-empty <NextContinuationToken>. Whitespace
// around a size, a time or IsTruncated is allowed (a pretty-printed reply); keys and tokens are
// taken as they are. A reply with <EncodingType> (keys URL-encoded, only sent when the request
// asks for it) is refused rather than returning encoded keys. InvalidArgument otherwise
// ("ListObjectsV2 reply: <Contents> #3 has no <Key>"; #1 is the first), including when the
// document is an <Error> reply (its code and message are quoted).
absl::StatusOr<ListObjectsReply> DecodeListObjectsReply(std::string_view xml);

// An S3 error reply: <Error><Code/><Message/><Resource/><RequestId/></Error>. Other fields
// (HostId, BucketName, Key, ...) are ignored.
struct ErrorReply {
  std::string code;  // "NoSuchBucket", "SlowDown", ...; never empty
  std::string message;
  std::string resource;
  std::string request_id;
};

// Decodes an error reply. <Code> is required and must not be empty; the other fields are empty
// when absent. InvalidArgument otherwise ("S3 error reply: ...").
absl::StatusOr<ErrorReply> DecodeErrorReply(std::string_view xml);

// A key a multi-object delete did not delete.
struct DeleteFailure {
  std::string key;
  std::string code;  // "AccessDenied", "InternalError", ...; never empty
  std::string message;
};

// A multi-object delete reply (<DeleteResult>). A quiet request gets only the failures.
struct DeleteReply {
  std::vector<std::string> deleted;  // in document order
  std::vector<DeleteFailure> failures;
};

// Decodes a multi-object delete reply: <Deleted> entries with one non-empty <Key>, <Error> entries
// with one non-empty <Key> and <Code> and at most one <Message>, in any order; none at all is
// fine. InvalidArgument otherwise ("DeleteObjects reply: <Error> #2 has no <Code>").
absl::StatusOr<DeleteReply> DecodeDeleteReply(std::string_view xml);

// The body of a multi-object delete request: an XML declaration, then
// <Delete xmlns="..."><Quiet>true|false</Quiet><Object><Key>..</Key></Object>...</Delete>, keys in
// the order given and escaped ('&', '<', '>' as entities; tab, LF and CR as character references,
// so that no server normalises them away). Quiet asks S3 to report only the failures.
// InvalidArgument for no keys or more than kMaxDeleteKeys (S3 answers MalformedXML to both), and
// for a key that is empty, not UTF-8, or holds a character XML 1.0 cannot carry (a C0 control other
// than tab, LF and CR, a surrogate, U+FFFE, U+FFFF): S3 refuses a request that spells one as a
// character reference (MalformedXML), so such an object cannot be deleted this way.
absl::StatusOr<std::string> EncodeDeleteRequest(const std::vector<std::string>& keys, bool quiet);

}  // namespace ickpt::s3
