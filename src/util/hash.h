// Hashes used by the format (format.md §1): XXH3-64 (xxHash) for checksums, SHA-256 (OpenSSL) for
// object names.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ickpt {

using Sha256Digest = std::array<uint8_t, 32>;

uint64_t Xxh3(std::string_view data);
uint64_t Xxh3(const void* data, size_t size);

Sha256Digest Sha256(std::string_view data);
std::string ToHex(const Sha256Digest& digest);
// Parses 64 lowercase hex characters; nullopt otherwise.
std::optional<Sha256Digest> Sha256FromHex(std::string_view hex);

// Streaming SHA-256, for data written in pieces.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(std::string_view data);
  Sha256Digest Finish();

 private:
  void* ctx_;  // EVP_MD_CTX*
};

// 128 random bits from the OS as 32 hex characters (repository ids, temp-file names).
std::string RandomHex128();

}  // namespace ickpt
