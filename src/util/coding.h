// Little-endian fixed-width and LEB128 varint encoding (format.md §1), with a bounds-checked
// decoder: every Get* fails rather than read past the end, so decoders of untrusted objects can be
// written without pointer arithmetic.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ickpt {

void PutFixed16(std::string* dst, uint16_t value);
void PutFixed32(std::string* dst, uint32_t value);
void PutFixed64(std::string* dst, uint64_t value);
void PutVarint64(std::string* dst, uint64_t value);
void PutLengthPrefixed(std::string* dst, std::string_view value);

uint16_t DecodeFixed16(const char* p);
uint32_t DecodeFixed32(const char* p);
uint64_t DecodeFixed64(const char* p);

// Reads from a byte string front to back. A failed read leaves the reader unchanged and returns
// false; callers turn that into a DataLoss status naming the object.
class Decoder {
 public:
  explicit Decoder(std::string_view input) : input_(input) {}
  bool GetFixed8(uint8_t* value);
  bool GetFixed16(uint16_t* value);
  bool GetFixed32(uint32_t* value);
  bool GetFixed64(uint64_t* value);
  // Rejects encodings longer than 10 bytes or overflowing 64 bits.
  bool GetVarint64(uint64_t* value);
  // Rejects a length larger than what remains.
  bool GetLengthPrefixed(std::string_view* value);
  bool GetBytes(size_t n, std::string_view* value);
  size_t remaining() const { return input_.size(); }
  bool empty() const { return input_.empty(); }
  std::string_view rest() const { return input_; }

 private:
  std::string_view input_;
};

}  // namespace ickpt
