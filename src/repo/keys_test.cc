#include "src/repo/keys.h"

#include <string>

#include "gtest/gtest.h"

namespace ickpt {
namespace {

const std::string kHash(64, 'a');
const std::string kOtherHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(KeysTest, IdKeysAreZeroPaddedToTwentyDigits) {
  EXPECT_EQ(CommitKey(42), "commits/00000000000000000042");
  EXPECT_EQ(IdReservationKey(1), "ids/00000000000000000001");
  EXPECT_EQ(CommitKey(UINT64_MAX), "commits/18446744073709551615");
}

TEST(KeysTest, IdKeysListInIdOrder) {
  // Listing is by key; zero padding makes that numeric order.
  EXPECT_LT(CommitKey(9), CommitKey(10));
  EXPECT_LT(CommitKey(99999), CommitKey(100000));
}

TEST(KeysTest, ParseIdKeyRoundTrips) {
  for (uint64_t id : {uint64_t{1}, uint64_t{42}, uint64_t{1} << 40, UINT64_MAX}) {
    EXPECT_EQ(ParseIdKey(CommitKey(id), kCommitsPrefix), id);
    EXPECT_EQ(ParseIdKey(IdReservationKey(id), kIdsPrefix), id);
  }
}

TEST(KeysTest, ParseIdKeyRejectsMalformed) {
  EXPECT_EQ(ParseIdKey("commits/42", kCommitsPrefix), std::nullopt);
  EXPECT_EQ(ParseIdKey("commits/000000000000000000042", kCommitsPrefix), std::nullopt);
  EXPECT_EQ(ParseIdKey("commits/0000000000000000004x", kCommitsPrefix), std::nullopt);
  EXPECT_EQ(ParseIdKey("commits/00000000000000000000", kCommitsPrefix), std::nullopt);
  EXPECT_EQ(ParseIdKey("commits/18446744073709551616", kCommitsPrefix), std::nullopt);
  EXPECT_EQ(ParseIdKey("commits/99999999999999999999", kCommitsPrefix), std::nullopt);
  EXPECT_EQ(ParseIdKey("commits/00000000000000000042.tmp-ab", kCommitsPrefix), std::nullopt);
  EXPECT_EQ(ParseIdKey(CommitKey(42), kIdsPrefix), std::nullopt);
  EXPECT_EQ(ParseIdKey("", kCommitsPrefix), std::nullopt);
}

TEST(KeysTest, HashKeysSpreadOverTwoCharacterPrefixes) {
  EXPECT_EQ(PackKey(kOtherHash), "packs/01/" + kOtherHash);
  EXPECT_EQ(ManifestKey(kHash), "manifests/aa/" + kHash);
}

TEST(KeysTest, ParseHashKeyRoundTrips) {
  EXPECT_EQ(ParseHashKey(PackKey(kOtherHash), kPacksPrefix), kOtherHash);
  EXPECT_EQ(ParseHashKey(ManifestKey(kHash), kManifestsPrefix), kHash);
}

TEST(KeysTest, ParseHashKeyRejectsMalformed) {
  EXPECT_EQ(ParseHashKey(PackKey(kHash), kManifestsPrefix), std::nullopt);
  EXPECT_EQ(ParseHashKey("packs/ab/" + kHash, kPacksPrefix), std::nullopt);  // wrong prefix dir
  EXPECT_EQ(ParseHashKey("packs/aa/" + kHash.substr(1), kPacksPrefix), std::nullopt);
  EXPECT_EQ(ParseHashKey("packs/aa/" + kHash + "a", kPacksPrefix), std::nullopt);
  std::string upper = kHash;
  upper[10] = 'A';
  EXPECT_EQ(ParseHashKey("packs/aa/" + upper, kPacksPrefix), std::nullopt);
  EXPECT_EQ(ParseHashKey("packs/aa" + kHash, kPacksPrefix), std::nullopt);
  EXPECT_EQ(ParseHashKey("packs/aa/" + kHash + ".tmp-1", kPacksPrefix), std::nullopt);
}

}  // namespace
}  // namespace ickpt
