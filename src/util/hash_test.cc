#include "src/util/hash.h"

#include <string>

#include "gtest/gtest.h"

namespace ickpt {
namespace {

TEST(HashTest, Sha256OfAbcMatchesFips180Vector) {
  EXPECT_EQ(ToHex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HashTest, Sha256OfEmpty) {
  EXPECT_EQ(ToHex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HashTest, StreamingEqualsOneShot) {
  Sha256Hasher hasher;
  hasher.Update("a");
  hasher.Update("");
  hasher.Update("bc");
  EXPECT_EQ(hasher.Finish(), Sha256("abc"));
}

TEST(HashTest, HexRoundTrip) {
  const Sha256Digest digest = Sha256("round trip");
  const std::string hex = ToHex(digest);
  ASSERT_EQ(hex.size(), 64u);
  auto parsed = Sha256FromHex(hex);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, digest);
}

TEST(HashTest, HexRejectsMalformed) {
  const std::string hex = ToHex(Sha256("x"));
  EXPECT_FALSE(Sha256FromHex(hex.substr(1)).has_value());
  EXPECT_FALSE(Sha256FromHex(hex + "0").has_value());
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper != hex) {
    EXPECT_FALSE(Sha256FromHex(upper).has_value()) << "names are lowercase";
  }
  std::string junk = hex;
  junk[10] = 'g';
  EXPECT_FALSE(Sha256FromHex(junk).has_value());
}

TEST(HashTest, Xxh3IsStable) {
  // XXH3-64, seed 0, of the empty input (xxHash 0.8): pinned because it is part of the format.
  EXPECT_EQ(Xxh3(""), 0x2d06800538d394c2ull);
  EXPECT_EQ(Xxh3(std::string_view("abc")), Xxh3("abc", 3));
  EXPECT_NE(Xxh3("abc"), Xxh3("abd"));
}

TEST(HashTest, RandomHex128IsHexAndUnique) {
  const std::string a = RandomHex128();
  const std::string b = RandomHex128();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace ickpt
