// Tests of the S3 XML codec (src/store/s3_xml.h): replies shaped like AWS's and Ceph RGW 16's,
// documented from their API references and RGW's rgw_rest_s3.cc, and the malformed and hostile
// documents a decoder of network bytes must refuse.
#include "src/store/s3_xml.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_replace.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/testing/status_matchers.h"
#include "src/util/str.h"

namespace ickpt::s3 {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::string_view kDeclaration = R"(<?xml version="1.0" encoding="UTF-8"?>)";
constexpr std::string_view kNamespace = R"( xmlns="http://s3.amazonaws.com/doc/2006-03-01/")";

absl::Time Utc(int y, int mo, int d, int h, int mi, int s, int ms = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone()) +
         absl::Milliseconds(ms);
}

// A <Contents> entry with AWS's fields.
std::string Contents(std::string_view key, std::string_view size = "42",
                     std::string_view last_modified = "2026-12-08T01:02:03.456Z") {
  return StrCat("<Contents><Key>", key, "</Key><LastModified>", last_modified,
                "</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>",
                size, "</Size><StorageClass>STANDARD</StorageClass></Contents>");
}

// A ListObjectsV2 reply around `body`, with the declaration and namespace.
std::string ListReply(std::string_view body, std::string_view truncated = "false") {
  return StrCat(kDeclaration, "\n<ListBucketResult", kNamespace,
                "><Name>ickpt</Name><Prefix>packs/</Prefix><MaxKeys>1000</MaxKeys><IsTruncated>",
                truncated, "</IsTruncated>", body, "</ListBucketResult>");
}

// The one key of a listing whose only <Contents> holds `key_xml`.
absl::StatusOr<std::string> KeyOf(std::string_view key_xml) {
  absl::StatusOr<ListObjectsReply> reply = DecodeListObjectsReply(ListReply(Contents(key_xml)));
  if (!reply.ok()) return reply.status();
  if (reply->objects.size() != 1) return absl::InternalError("not one object");
  return reply->objects[0].key;
}

// Asserts InvalidArgument whose message holds `needle`.
template <typename T>
void ExpectInvalid(const absl::StatusOr<T>& result, std::string_view needle) {
  ASSERT_FALSE(result.ok()) << "accepted; expected an error with: " << needle;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(std::string(needle)));
}

// ---- ListObjectsV2 ----

TEST(S3ListReplyTest, DecodesAwsReply) {
  // AWS's shape (ListObjectsV2 API reference): declaration, namespace, KeyCount, ChecksumAlgorithm
  // and a nested element (RestoreStatus) that the decoder does not know.
  const std::string xml =
      StrCat(kDeclaration, "\n<ListBucketResult", kNamespace,
             "><Name>ickpt-prod</Name><Prefix>repo/packs/</Prefix><KeyCount>2</KeyCount>"
             "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
             "<Contents><Key>repo/packs/00/00a1f3</Key><LastModified>2026-12-08T01:02:03.456Z"
             "</LastModified><ETag>&quot;599bab3ed2c697f1d26842727561fd94&quot;</ETag>"
             "<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><Size>1048576</Size>"
             "<StorageClass>STANDARD</StorageClass></Contents>"
             "<Contents><Key>repo/packs/ff/ff09</Key><LastModified>2026-12-09T23:59:59.000Z"
             "</LastModified><ETag>&quot;7e8a6f2d1c3b4a5e-2&quot;</ETag><Size>0</Size>"
             "<StorageClass>GLACIER</StorageClass><RestoreStatus><IsRestoreInProgress>false"
             "</IsRestoreInProgress></RestoreStatus></Contents></ListBucketResult>");
  ASSERT_OK_AND_ASSIGN(ListObjectsReply reply, DecodeListObjectsReply(xml));
  EXPECT_FALSE(reply.is_truncated);
  EXPECT_EQ(reply.next_continuation_token, "");
  ASSERT_EQ(reply.objects.size(), 2u);
  EXPECT_EQ(reply.objects[0].key, "repo/packs/00/00a1f3");
  EXPECT_EQ(reply.objects[0].size, 1048576u);
  EXPECT_EQ(reply.objects[0].last_modified, Utc(2026, 12, 8, 1, 2, 3, 456));
  EXPECT_EQ(reply.objects[1].key, "repo/packs/ff/ff09");
  EXPECT_EQ(reply.objects[1].size, 0u);
  EXPECT_EQ(reply.objects[1].last_modified, Utc(2026, 12, 9, 23, 59, 59));
}

TEST(S3ListReplyTest, DecodesRgwReply) {
  // RGW 16's shape (rgw_rest_s3.cc, RGWListBucket_ObjStore_S3v2): the fields in RGW's order,
  // ContinuationToken echoed, Owner (fetch-owner=true), Type, KeyCount at the end.
  const std::string xml = StrCat(
      kDeclaration, "<ListBucketResult", kNamespace,
      "><Name>ickpt</Name><Prefix></Prefix><ContinuationToken>MTAwMA==</ContinuationToken>"
      "<NextContinuationToken>1~pL+fZbA2t3Mq</NextContinuationToken><MaxKeys>2</MaxKeys>"
      "<IsTruncated>true</IsTruncated>"
      "<Contents><Key>commits/00000000000000000007</Key>"
      "<LastModified>2026-12-08T10:11:12.131Z</LastModified>"
      "<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>612</Size>"
      "<StorageClass>STANDARD</StorageClass><Owner><ID>ickpt</ID><DisplayName>ickpt user"
      "</DisplayName></Owner><Type>Normal</Type></Contents>"
      "<Contents><Key>config</Key><LastModified>2026-12-07T00:00:00.000Z</LastModified>"
      "<ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;</ETag><Size>18446744073709551615</Size>"
      "<StorageClass>STANDARD</StorageClass><Owner><ID>ickpt</ID><DisplayName>ickpt user"
      "</DisplayName></Owner><Type>Normal</Type></Contents><KeyCount>2</KeyCount>"
      "</ListBucketResult>");
  ASSERT_OK_AND_ASSIGN(ListObjectsReply reply, DecodeListObjectsReply(xml));
  EXPECT_TRUE(reply.is_truncated);
  EXPECT_EQ(reply.next_continuation_token, "1~pL+fZbA2t3Mq");
  ASSERT_EQ(reply.objects.size(), 2u);
  EXPECT_EQ(reply.objects[0].key, "commits/00000000000000000007");
  EXPECT_EQ(reply.objects[0].size, 612u);
  EXPECT_EQ(reply.objects[0].last_modified, Utc(2026, 12, 8, 10, 11, 12, 131));
  EXPECT_EQ(reply.objects[1].key, "config");
  EXPECT_EQ(reply.objects[1].size, UINT64_MAX);
}

TEST(S3ListReplyTest, DecodesWithoutNamespaceOrDeclarationAndWithAPrefix) {
  const std::string bare =
      "<ListBucketResult><IsTruncated>false</IsTruncated>" + Contents("a") + "</ListBucketResult>";
  ASSERT_OK_AND_ASSIGN(ListObjectsReply reply, DecodeListObjectsReply(bare));
  ASSERT_EQ(reply.objects.size(), 1u);
  EXPECT_EQ(reply.objects[0].key, "a");

  const std::string prefixed =
      R"(<s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">)"
      "<s3:IsTruncated>false</s3:IsTruncated><s3:Contents><s3:Key>b</s3:Key><s3:Size>1</s3:Size>"
      "<s3:LastModified>2026-12-08T01:02:03Z</s3:LastModified></s3:Contents>"
      "</s3:ListBucketResult>";
  ASSERT_OK_AND_ASSIGN(reply, DecodeListObjectsReply(prefixed));
  ASSERT_EQ(reply.objects.size(), 1u);
  EXPECT_EQ(reply.objects[0].key, "b");
}

TEST(S3ListReplyTest, DecodesPrettyPrintedReply) {
  const std::string xml =
      StrCat(kDeclaration, "\n<ListBucketResult", kNamespace, ">\n",
             "  <IsTruncated> true </IsTruncated>\n",
             "  <NextContinuationToken>tok</NextContinuationToken>\n",
             "  <Contents>\n    <Key>k</Key>\n    <Size>\n      7\n    </Size>\n",
             "    <LastModified> 2026-12-08T01:02:03Z </LastModified>\n",
             "  </Contents>\n</ListBucketResult>\n");
  ASSERT_OK_AND_ASSIGN(ListObjectsReply reply, DecodeListObjectsReply(xml));
  EXPECT_TRUE(reply.is_truncated);
  ASSERT_EQ(reply.objects.size(), 1u);
  EXPECT_EQ(reply.objects[0].size, 7u);
  EXPECT_EQ(reply.objects[0].last_modified, Utc(2026, 12, 8, 1, 2, 3));
}

TEST(S3ListReplyTest, DecodesTruncatedReplyWithContinuationToken) {
  // Tokens are opaque and may hold characters that XML escapes.
  const std::string xml = ListReply(
      "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=&amp;x</"
      "NextContinuationToken>" +
          Contents("packs/01"),
      "true");
  ASSERT_OK_AND_ASSIGN(ListObjectsReply reply, DecodeListObjectsReply(xml));
  EXPECT_TRUE(reply.is_truncated);
  EXPECT_EQ(reply.next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=&x");
  EXPECT_EQ(reply.objects.size(), 1u);
}

TEST(S3ListReplyTest, RefusesTruncatedReplyWithoutToken) {
  // Taking it for the whole listing would make the rest of the objects look absent.
  ExpectInvalid(DecodeListObjectsReply(ListReply(Contents("a"), "true")),
                "ListObjectsV2 reply: truncated <ListBucketResult> has no <NextContinuationToken>");
  ExpectInvalid(
      DecodeListObjectsReply(ListReply("<NextContinuationToken></NextContinuationToken>", "true")),
      "has an empty <NextContinuationToken>");
}

TEST(S3ListReplyTest, DecodesEmptyListing) {
  const std::string xml =
      StrCat(kDeclaration, "<ListBucketResult", kNamespace,
             "><Name>ickpt</Name><Prefix>nothing/</Prefix><KeyCount>0</KeyCount>"
             "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>");
  ASSERT_OK_AND_ASSIGN(ListObjectsReply reply, DecodeListObjectsReply(xml));
  EXPECT_TRUE(reply.objects.empty());
  EXPECT_FALSE(reply.is_truncated);
  // RGW writes an empty bucket's prefix as <Prefix/>.
  ASSERT_OK(DecodeListObjectsReply(
      "<ListBucketResult><Prefix/><IsTruncated>false</IsTruncated></ListBucketResult>"));
}

TEST(S3ListReplyTest, ReturnsKeysUnescaped) {
  EXPECT_EQ(KeyOf("a&amp;b&lt;c&gt;d&quot;e&apos;f").value(), "a&b<c>d\"e'f");
  EXPECT_EQ(KeyOf("caf&#233;/&#x65E5;&#x1F600;").value(),
            "caf\xC3\xA9/\xE6\x97\xA5\xF0\x9F\x98\x80");
  EXPECT_EQ(KeyOf("raw caf\xC3\xA9").value(), "raw caf\xC3\xA9");
  // AWS writes a key holding a C0 control as a character reference XML 1.0 does not allow: such a
  // listing must still decode, byte for byte.
  EXPECT_EQ(KeyOf("bell&#x7;nul&#0;").value(), std::string("bell\x07nul\0", 9));
  EXPECT_EQ(KeyOf("&#x0000041;").value(), "A");
  // CDATA, a comment in the middle, whitespace-only keys, and no line-end normalisation.
  EXPECT_EQ(KeyOf("<![CDATA[<a&b>]]>c").value(), "<a&b>c");
  EXPECT_EQ(KeyOf("x<!-- note -->y").value(), "xy");
  EXPECT_EQ(KeyOf(" ").value(), " ");
  EXPECT_EQ(KeyOf(" a b ").value(), " a b ");
  EXPECT_EQ(KeyOf("cr\rlf\n&#13;").value(), "cr\rlf\n\r");
}

TEST(S3ListReplyTest, RefusesBadReferencesInKeys) {
  ExpectInvalid(KeyOf("a & b"), "<Contents> #1 has a <Key> with '&' without a reference: \"& b\"");
  ExpectInvalid(KeyOf("a&nbsp;b"),
                "<Contents> #1 has a <Key> with an unknown or invalid reference \"&nbsp;\"");
  ExpectInvalid(KeyOf("&#xD800;"), "invalid reference");    // a surrogate
  ExpectInvalid(KeyOf("&#x110000;"), "invalid reference");  // beyond Unicode
  ExpectInvalid(KeyOf("&#99999999999999;"), "invalid reference");
  ExpectInvalid(KeyOf("&#;"), "invalid reference");
  ExpectInvalid(KeyOf("&#x;"), "invalid reference");
  ExpectInvalid(KeyOf("&#12a;"), "invalid reference");
  ExpectInvalid(KeyOf("&#x41"), "'&' without a reference");
}

TEST(S3ListReplyTest, NeverExpandsExternalEntities) {
  // pugixml has no DTD support: the entity is not declared as far as the decoder knows, so "&e;"
  // is an unknown reference, and /etc/hostname is never read.
  const std::string xml =
      "<?xml version=\"1.0\"?><!DOCTYPE ListBucketResult [<!ENTITY e SYSTEM "
      "\"file:///etc/hostname\">]><ListBucketResult><IsTruncated>false</IsTruncated>" +
      Contents("&e;") + "</ListBucketResult>";
  ExpectInvalid(DecodeListObjectsReply(xml), "unknown or invalid reference \"&e;\"");
}

TEST(S3ListReplyTest, RefusesBadSize) {
  for (std::string_view size : {"-1", "12a", "+5", "0x10", "1.5", "1 2", "", "18446744073709551616",
                                "99999999999999999999999", "&#x31;&#x32;a"}) {
    ExpectInvalid(DecodeListObjectsReply(ListReply(Contents("k", size))),
                  size.empty() ? "<Contents> #1 has an empty <Size>"
                               : "<Contents> #1 has a <Size> that is not a decimal 64-bit size");
  }
  ASSERT_OK_AND_ASSIGN(ListObjectsReply reply,
                       DecodeListObjectsReply(ListReply(Contents("k", "007"))));
  EXPECT_EQ(reply.objects[0].size, 7u);
}

TEST(S3ListReplyTest, RefusesMissingKeyNamingTheEntry) {
  const std::string xml =
      ListReply(Contents("a") + Contents("b") +
                "<Contents><Size>1</Size><LastModified>2026-12-08T01:02:03Z</LastModified>"
                "</Contents>");
  ExpectInvalid(DecodeListObjectsReply(xml), "ListObjectsV2 reply: <Contents> #3 has no <Key>");
  ExpectInvalid(DecodeListObjectsReply(ListReply(Contents(""))),
                "<Contents> #1 has an empty <Key>");
}

TEST(S3ListReplyTest, RefusesMissingOrRepeatedFields) {
  ExpectInvalid(DecodeListObjectsReply(ListReply(
                    "<Contents><Key>k</Key><LastModified>2026-12-08T01:02:03Z</LastModified>"
                    "</Contents>")),
                "<Contents> #1 has no <Size>");
  ExpectInvalid(
      DecodeListObjectsReply(ListReply("<Contents><Key>k</Key><Size>1</Size></Contents>")),
      "<Contents> #1 has no <LastModified>");
  ExpectInvalid(DecodeListObjectsReply(
                    ListReply("<Contents><Key>k</Key><Key>j</Key><Size>1</Size>"
                              "<LastModified>2026-12-08T01:02:03Z</LastModified></Contents>")),
                "<Contents> #1 has more than one <Key>");
  ExpectInvalid(DecodeListObjectsReply(ListReply(Contents("a<b/>c"))),
                "<Contents> #1 has a <Key> with an element \"b\" inside");
  ExpectInvalid(DecodeListObjectsReply("<ListBucketResult></ListBucketResult>"),
                "<ListBucketResult> has no <IsTruncated>");
  ExpectInvalid(DecodeListObjectsReply(ListReply("", "yes")),
                "<IsTruncated> is neither \"true\" nor \"false\": \"yes\"");
  ExpectInvalid(DecodeListObjectsReply(ListReply("<IsTruncated>false</IsTruncated>")),
                "<ListBucketResult> has more than one <IsTruncated>");
}

TEST(S3ListReplyTest, RefusesUrlEncodedKeys) {
  ExpectInvalid(
      DecodeListObjectsReply(ListReply("<EncodingType>url</EncodingType>" + Contents("a%2Fb"))),
      "keys are encoded (<EncodingType> \"url\")");
}

TEST(S3ListReplyTest, ParsesLastModifiedWithZOrOffset) {
  struct Case {
    std::string_view text;
    absl::Time time;
  } cases[] = {
      {"2026-12-08T01:02:03.456Z", Utc(2026, 12, 8, 1, 2, 3, 456)},
      {"2026-12-08T01:02:03Z", Utc(2026, 12, 8, 1, 2, 3)},
      {"2026-12-08T01:02:03.5Z", Utc(2026, 12, 8, 1, 2, 3, 500)},
      {"2026-12-08T01:02:03.000000001Z", Utc(2026, 12, 8, 1, 2, 3) + absl::Nanoseconds(1)},
      {"2026-12-08T02:02:03.456+01:00", Utc(2026, 12, 8, 1, 2, 3, 456)},
      {"2026-12-07T20:02:03-05:00", Utc(2026, 12, 8, 1, 2, 3)},
      {"1970-01-01T00:00:00.000Z", absl::UnixEpoch()},
  };
  for (const Case& c : cases) {
    ASSERT_OK_AND_ASSIGN(ListObjectsReply reply,
                         DecodeListObjectsReply(ListReply(Contents("k", "1", c.text))));
    EXPECT_EQ(reply.objects[0].last_modified, c.time) << c.text;
  }
}

TEST(S3ListReplyTest, RefusesBadLastModified) {
  for (std::string_view text :
       {"yesterday", "2026-12-08", "2026-12-08 01:02:03Z", "2026-12-08t01:02:03Z",
        "2026-12-08T01:02:03", "2026-12-08T01:02:03.Z", "2026-12-08T01:02:03.1234567890Z",
        "2026-02-30T01:02:03Z", "2026-12-08T25:02:03Z", "2026-12-08T01:02:03+0100",
        "+2026-12-08T01:02:03Z", "99999-12-08T01:02:03Z", "infinite-future",
        "Tue, 08 Dec 2026 01:02:03 GMT"}) {
    ExpectInvalid(DecodeListObjectsReply(ListReply(Contents("k", "1", text))),
                  "<Contents> #1 has a <LastModified> that is not an ISO 8601 time");
  }
}

TEST(S3ListReplyTest, RefusesNonXml) {
  ExpectInvalid(DecodeListObjectsReply(""),
                "ListObjectsV2 reply: not XML: No document element found at offset 0");
  ExpectInvalid(DecodeListObjectsReply("{\"Contents\": []}"), "ListObjectsV2 reply: not XML: ");
  ExpectInvalid(DecodeListObjectsReply("<html><body>502 Bad Gateway</body>"),
                "not XML: Start-end tags mismatch at offset");
  ExpectInvalid(DecodeListObjectsReply(std::string("<ListBucketResult>\0</ListBucketResult>", 37)),
                "not XML: a NUL byte at offset 18");
  ExpectInvalid(DecodeListObjectsReply(ListReply("") + "<ListBucketResult/>"),
                "not XML: more than one root element");
  ExpectInvalid(DecodeListObjectsReply("<Other/>"),
                "the root element is \"Other\", not <ListBucketResult>");
}

TEST(S3ListReplyTest, RefusesEveryTruncationOfAReply) {
  // A connection cut mid-reply: every proper prefix must be an error, never a shorter listing.
  const std::string xml = ListReply(Contents("a") + Contents("b&amp;c") + Contents("d"));
  ASSERT_OK(DecodeListObjectsReply(xml));
  for (size_t n = 0; n < xml.size(); ++n) {
    // string_view over a copy of exactly n bytes: what follows is not readable by the decoder
    // (ASan builds catch a read past the end).
    const std::string prefix = xml.substr(0, n);
    EXPECT_FALSE(DecodeListObjectsReply(std::string_view(prefix.data(), n)).ok()) << n;
  }
}

TEST(S3ListReplyTest, ReadsOnlyTheGivenBytes) {
  // The view ends inside the buffer: the decoder must not see the rest (no NUL terminator needed).
  const std::string xml = ListReply(Contents("k"));
  const std::string buffer = xml + "<garbage";
  ASSERT_OK(DecodeListObjectsReply(std::string_view(buffer.data(), xml.size())));
}

TEST(S3ListReplyTest, QuotesAnErrorReplyGivenAsAListing) {
  ExpectInvalid(
      DecodeListObjectsReply(StrCat(kDeclaration,
                                    "<Error><Code>NoSuchBucket</Code><Message>The "
                                    "specified bucket does not exist</Message></Error>")),
      "ListObjectsV2 reply: an S3 error reply: \"NoSuchBucket\" \"The specified bucket does not "
      "exist\"");
}

TEST(S3ListReplyTest, RefusesOversizedDocumentsBeforeParsing) {
  std::string big = ListReply("");
  big.resize(kMaxXmlBytes + 1, ' ');
  ExpectInvalid(DecodeListObjectsReply(big), "67108865 bytes, above the limit of 67108864");
  // Many tiny elements: within the byte limit, but each would cost pugixml a node.
  std::string many = "<ListBucketResult>";
  for (size_t i = 0; i < kMaxXmlMarkup; ++i) many += "<a/>";
  many += "</ListBucketResult>";
  ExpectInvalid(DecodeListObjectsReply(many), "tags, above the limit of 1048576");
}

// ---- Error replies ----

TEST(S3ErrorReplyTest, DecodesAwsAndRgwErrors) {
  struct Case {
    std::string xml;
    ErrorReply want;
  } cases[] = {
      // AWS: no namespace, BucketName and HostId besides the four fields.
      {StrCat(
           kDeclaration,
           "\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist"
           "</Message><BucketName>ickpt-gone</BucketName><RequestId>4442587FB7D0A2F9"
           "</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>"
           "</Error>"),
       {"NoSuchBucket", "The specified bucket does not exist", "", "4442587FB7D0A2F9"}},
      {StrCat(kDeclaration,
              "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions "
              "you specified did not hold</Message><Condition>If-None-Match</Condition>"
              "<Resource>/ickpt/commits/00000000000000000007</Resource><RequestId>"
              "tx00000a1b2c3d4e5f6-0067555b9f-1234-default</RequestId><HostId>1234-default-default"
              "</HostId></Error>"),
       {"PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
        "/ickpt/commits/00000000000000000007", "tx00000a1b2c3d4e5f6-0067555b9f-1234-default"}},
      // RGW: an empty <Message/>, BucketName, RequestId with its "tx" form.
      {StrCat(kDeclaration,
              "<Error><Code>XAmzContentSHA256Mismatch</Code><Message></Message><BucketName>ickpt"
              "</BucketName><RequestId>tx000003e0ab1b2c3d4e5f6-0067555ba0-1234-default</RequestId>"
              "<HostId>1234-default-default</HostId></Error>"),
       {"XAmzContentSHA256Mismatch", "", "", "tx000003e0ab1b2c3d4e5f6-0067555ba0-1234-default"}},
      {StrCat(kDeclaration, "<Error", kNamespace,
              "><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
              "<Resource>/ickpt/packs/00/00a1</Resource><RequestId>ABC&amp;123</RequestId>"
              "</Error>"),
       {"SlowDown", "Please reduce your request rate.", "/ickpt/packs/00/00a1", "ABC&123"}},
  };
  for (const Case& c : cases) {
    ASSERT_OK_AND_ASSIGN(ErrorReply reply, DecodeErrorReply(c.xml));
    EXPECT_EQ(reply.code, c.want.code);
    EXPECT_EQ(reply.message, c.want.message);
    EXPECT_EQ(reply.resource, c.want.resource);
    EXPECT_EQ(reply.request_id, c.want.request_id);
  }
}

TEST(S3ErrorReplyTest, RefusesMalformedErrors) {
  ExpectInvalid(DecodeErrorReply("<Error><Message>m</Message></Error>"),
                "S3 error reply: <Error> has no <Code>");
  ExpectInvalid(DecodeErrorReply("<Error><Code/></Error>"), "<Error> has an empty <Code>");
  ExpectInvalid(DecodeErrorReply("<Error><Code>A</Code><Code>B</Code></Error>"),
                "<Error> has more than one <Code>");
  ExpectInvalid(DecodeErrorReply("<ListBucketResult/>"),
                "S3 error reply: the root element is \"ListBucketResult\", not <Error>");
  ExpectInvalid(DecodeErrorReply("<html>503 Service Unavailable</html"),
                "S3 error reply: not XML:");
  ExpectInvalid(DecodeErrorReply(""), "S3 error reply: not XML:");
}

// ---- Multi-object delete ----

TEST(S3DeleteReplyTest, DecodesDeletedAndErrorEntries) {
  const std::string xml = StrCat(
      kDeclaration, "\n<DeleteResult", kNamespace,
      "><Deleted><Key>packs/00/aa</Key></Deleted>"
      "<Error><Key>packs/01/bb</Key><Code>AccessDenied</Code><Message>Access Denied</Message>"
      "</Error>"
      "<Deleted><Key>a&amp;b</Key><VersionId>null</VersionId><DeleteMarker>true</DeleteMarker>"
      "<DeleteMarkerVersionId>3HL4kqtJvjVBH40Nrjfkd</DeleteMarkerVersionId></Deleted>"
      "<Error><Key>c</Key><VersionId>v1</VersionId><Code>InternalError</Code></Error>"
      "</DeleteResult>");
  ASSERT_OK_AND_ASSIGN(DeleteReply reply, DecodeDeleteReply(xml));
  EXPECT_THAT(reply.deleted, ElementsAre("packs/00/aa", "a&b"));
  ASSERT_EQ(reply.failures.size(), 2u);
  EXPECT_EQ(reply.failures[0].key, "packs/01/bb");
  EXPECT_EQ(reply.failures[0].code, "AccessDenied");
  EXPECT_EQ(reply.failures[0].message, "Access Denied");
  EXPECT_EQ(reply.failures[1].key, "c");
  EXPECT_EQ(reply.failures[1].code, "InternalError");
  EXPECT_EQ(reply.failures[1].message, "");
}

TEST(S3DeleteReplyTest, DecodesQuietReplyWithNoEntries) {
  ASSERT_OK_AND_ASSIGN(DeleteReply reply,
                       DecodeDeleteReply(StrCat(kDeclaration, "<DeleteResult", kNamespace, "/>")));
  EXPECT_TRUE(reply.deleted.empty());
  EXPECT_TRUE(reply.failures.empty());
}

TEST(S3DeleteReplyTest, RefusesEntriesWithoutKeyOrCode) {
  ExpectInvalid(DecodeDeleteReply("<DeleteResult><Deleted><Key>a</Key></Deleted><Deleted>"
                                  "<VersionId>1</VersionId></Deleted></DeleteResult>"),
                "DeleteObjects reply: <Deleted> #2 has no <Key>");
  ExpectInvalid(DecodeDeleteReply("<DeleteResult><Error><Key>a</Key><Message>m</Message></Error>"
                                  "</DeleteResult>"),
                "DeleteObjects reply: <Error> #1 has no <Code>");
  ExpectInvalid(DecodeDeleteReply("<DeleteResult><Error><Code>AccessDenied</Code></Error>"
                                  "</DeleteResult>"),
                "<Error> #1 has no <Key>");
  ExpectInvalid(DecodeDeleteReply("<Delete><Object><Key>a</Key></Object></Delete>"),
                "the root element is \"Delete\", not <DeleteResult>");
}

TEST(S3DeleteRequestTest, EncodesTheDocumentS3Expects) {
  ASSERT_OK_AND_ASSIGN(std::string body, EncodeDeleteRequest({"packs/00/aa", "a&b"}, true));
  EXPECT_EQ(body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
            "<Object><Key>packs/00/aa</Key></Object><Object><Key>a&amp;b</Key></Object></Delete>");
  ASSERT_OK_AND_ASSIGN(body, EncodeDeleteRequest({"k"}, false));
  EXPECT_THAT(body, HasSubstr("<Quiet>false</Quiet>"));
}

// The request as the reply S3 sends when every key was deleted: the same escaped key text.
std::string AsDeleteReply(std::string_view request) {
  return absl::StrReplaceAll(absl::string_view(request.data(), request.size()),
                             {{"<Delete ", "<DeleteResult "},
                              {"</Delete>", "</DeleteResult>"},
                              {"<Object>", "<Deleted>"},
                              {"</Object>", "</Deleted>"}});
}

TEST(S3DeleteRequestTest, EscapedKeysRoundTrip) {
  const std::vector<std::string> keys = {"plain",        "a&b",         "<tag>",
                                         "x]]>y",        "q\"u'o",      " ",
                                         "tab\there",    "line\nfeed",  "carriage\rret",
                                         "&amp;literal", "caf\xC3\xA9", "\xF0\x9F\x98\x80",
                                         "\xEF\xBF\xBD", "&#65;",       "a/b/../c"};
  ASSERT_OK_AND_ASSIGN(std::string body, EncodeDeleteRequest(keys, false));
  EXPECT_THAT(body, HasSubstr("<Key>a&amp;b</Key>"));
  EXPECT_THAT(body, HasSubstr("<Key>&lt;tag&gt;</Key>"));
  EXPECT_THAT(body, HasSubstr("<Key>carriage&#13;ret</Key>"));
  ASSERT_OK_AND_ASSIGN(DeleteReply reply, DecodeDeleteReply(AsDeleteReply(body)));
  EXPECT_EQ(reply.deleted, keys);
}

TEST(S3DeleteRequestTest, RefusesMoreThan1000Keys) {
  std::vector<std::string> keys(1000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = StrCat("packs/", i);
  ASSERT_OK_AND_ASSIGN(std::string body, EncodeDeleteRequest(keys, true));
  ASSERT_OK_AND_ASSIGN(DeleteReply reply, DecodeDeleteReply(AsDeleteReply(body)));
  EXPECT_EQ(reply.deleted, keys);
  keys.push_back("one-too-many");
  ExpectInvalid(EncodeDeleteRequest(keys, true),
                "DeleteObjects request: 1001 keys, above S3's limit of 1000");
  ExpectInvalid(EncodeDeleteRequest({}, true), "DeleteObjects request: no keys");
}

TEST(S3DeleteRequestTest, RefusesKeysXmlCannotCarry) {
  ExpectInvalid(EncodeDeleteRequest({"a", ""}, true), "key #2 is empty");
  for (std::string key : {std::string("bell\x07"), std::string("nul\0", 4), std::string("\x1F"),
                          std::string("bad\xFF"), std::string("\xC0\xAF"),  // overlong '/'
                          std::string("\xED\xA0\x80"),                      // a surrogate
                          std::string("\xEF\xBF\xBE"),                      // U+FFFE
                          std::string("\xF4\x90\x80\x80"),                  // above U+10FFFF
                          std::string("cut\xE6\x97")}) {
    ExpectInvalid(EncodeDeleteRequest({"ok", key}, true), "key #2 ");
  }
}

}  // namespace
}  // namespace ickpt::s3
