#include "src/util/coding.h"

#include <cstring>

namespace ickpt {
namespace {
template <typename T>
void PutFixed(std::string* dst, T value) {
  char buf[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) buf[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  dst->append(buf, sizeof(T));
}
template <typename T>
T DecodeFixed(const char* p) {
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    value |= static_cast<T>(static_cast<uint8_t>(p[i])) << (8 * i);
  }
  return value;
}
}  // namespace

void PutFixed16(std::string* dst, uint16_t value) { PutFixed(dst, value); }
void PutFixed32(std::string* dst, uint32_t value) { PutFixed(dst, value); }
void PutFixed64(std::string* dst, uint64_t value) { PutFixed(dst, value); }

void PutVarint64(std::string* dst, uint64_t value) {
  char buf[10];
  int n = 0;
  while (value >= 0x80) {
    buf[n++] = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  buf[n++] = static_cast<char>(value);
  dst->append(buf, n);
}

void PutLengthPrefixed(std::string* dst, std::string_view value) {
  PutVarint64(dst, value.size());
  dst->append(value.data(), value.size());
}

uint16_t DecodeFixed16(const char* p) { return DecodeFixed<uint16_t>(p); }
uint32_t DecodeFixed32(const char* p) { return DecodeFixed<uint32_t>(p); }
uint64_t DecodeFixed64(const char* p) { return DecodeFixed<uint64_t>(p); }

bool Decoder::GetFixed8(uint8_t* value) {
  if (input_.size() < 1) return false;
  *value = static_cast<uint8_t>(input_[0]);
  input_.remove_prefix(1);
  return true;
}
bool Decoder::GetFixed16(uint16_t* value) {
  if (input_.size() < 2) return false;
  *value = DecodeFixed16(input_.data());
  input_.remove_prefix(2);
  return true;
}
bool Decoder::GetFixed32(uint32_t* value) {
  if (input_.size() < 4) return false;
  *value = DecodeFixed32(input_.data());
  input_.remove_prefix(4);
  return true;
}
bool Decoder::GetFixed64(uint64_t* value) {
  if (input_.size() < 8) return false;
  *value = DecodeFixed64(input_.data());
  input_.remove_prefix(8);
  return true;
}

bool Decoder::GetVarint64(uint64_t* value) {
  uint64_t result = 0;
  for (size_t i = 0; i < 10 && i < input_.size(); ++i) {
    const uint64_t byte = static_cast<uint8_t>(input_[i]);
    // The 10th byte may only carry the top bit of a 64-bit value.
    if (i == 9 && byte > 1) return false;
    result |= (byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      *value = result;
      input_.remove_prefix(i + 1);
      return true;
    }
  }
  return false;
}

bool Decoder::GetLengthPrefixed(std::string_view* value) {
  Decoder saved = *this;
  uint64_t length = 0;
  if (!GetVarint64(&length) || length > input_.size()) {
    *this = saved;
    return false;
  }
  *value = input_.substr(0, length);
  input_.remove_prefix(length);
  return true;
}

bool Decoder::GetBytes(size_t n, std::string_view* value) {
  if (n > input_.size()) return false;
  *value = input_.substr(0, n);
  input_.remove_prefix(n);
  return true;
}

}  // namespace ickpt
