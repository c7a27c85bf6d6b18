// Fuzz target: the bounds-checked Decoder (src/util/coding.h, format.md §1).
//
// The input drives the decoder: each step reads an opcode byte, then the read it names. A failed
// read must leave the decoder unchanged; a successful one consumes exactly what it read. A varint
// that decodes re-encodes (minimally) to no more bytes than it took, and to the same bytes when
// those were minimal.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "src/util/coding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view input = fuzz::AsView(data, size);
  Decoder d(input);
  uint8_t op = 0;
  while (d.GetFixed8(&op)) {
    const std::string_view before = d.rest();
    bool ok = false;
    size_t expected = 0;
    switch (op % 7) {
      case 0: {
        uint8_t v;
        ok = d.GetFixed8(&v);
        expected = 1;
        break;
      }
      case 1: {
        uint16_t v;
        ok = d.GetFixed16(&v);
        expected = 2;
        break;
      }
      case 2: {
        uint32_t v;
        ok = d.GetFixed32(&v);
        expected = 4;
        break;
      }
      case 3: {
        uint64_t v;
        ok = d.GetFixed64(&v);
        if (ok) ICKPT_FUZZ_CHECK(DecodeFixed64(before.data()) == v, "fixed64");
        expected = 8;
        break;
      }
      case 4: {
        uint64_t v = 0;
        ok = d.GetVarint64(&v);
        if (ok) {
          expected = before.size() - d.remaining();
          ICKPT_FUZZ_CHECK(expected >= 1 && expected <= 10, "varint of ", expected, " bytes");
          std::string encoded;
          PutVarint64(&encoded, v);
          ICKPT_FUZZ_CHECK(encoded.size() <= expected, "varint re-encodes longer");
          // Minimal: the last byte read is not a zero continuation (or the value is 0 in 1 byte).
          if (expected == 1 || before[expected - 1] != 0) {
            ICKPT_FUZZ_CHECK(encoded == before.substr(0, expected),
                             "varint re-encodes differently");
          }
          Decoder again(encoded);
          uint64_t w = 0;
          ICKPT_FUZZ_CHECK(again.GetVarint64(&w) && w == v && again.empty(), "varint round trip");
        }
        break;
      }
      case 5: {
        std::string_view v;
        ok = d.GetLengthPrefixed(&v);
        if (ok) {
          expected = before.size() - d.remaining();
          ICKPT_FUZZ_CHECK(v.size() < expected && v.data() + v.size() == d.rest().data(),
                           "length-prefixed string misplaced");
        }
        break;
      }
      case 6: {
        const size_t n = op / 7;
        std::string_view v;
        ok = d.GetBytes(n, &v);
        if (ok) ICKPT_FUZZ_CHECK(v == before.substr(0, n), "GetBytes");
        expected = n;
        break;
      }
    }
    if (ok) {
      ICKPT_FUZZ_CHECK(d.remaining() == before.size() - expected, "op ", op % 7, " consumed ",
                       before.size() - d.remaining(), " bytes, expected ", expected);
    } else {
      ICKPT_FUZZ_CHECK(d.rest().data() == before.data() && d.remaining() == before.size(),
                       "failed op ", op % 7, " moved the decoder");
      break;
    }
  }
  return 0;
}
