// A set of block numbers as a bitmap: the dirty set of a region.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

namespace ickpt {

class DirtyBitmap {
 public:
  DirtyBitmap() = default;
  explicit DirtyBitmap(uint64_t bits) { Resize(bits); }

  uint64_t size() const { return bits_; }
  // New bits are clear; bits past the new size are dropped.
  void Resize(uint64_t bits) {
    bits_ = bits;
    words_.resize((bits + 63) / 64, 0);
    if (bits % 64 != 0 && !words_.empty()) words_.back() &= (uint64_t{1} << (bits % 64)) - 1;
  }
  void Set(uint64_t i) { words_[i / 64] |= uint64_t{1} << (i % 64); }
  bool Test(uint64_t i) const { return (words_[i / 64] >> (i % 64)) & 1; }
  // Sets [first, first + count), clipped to the size.
  void SetRange(uint64_t first, uint64_t count) {
    const uint64_t end = first + count < bits_ ? first + count : bits_;
    for (uint64_t i = first; i < end;) {
      if (i % 64 == 0 && end - i >= 64) {
        words_[i / 64] = ~uint64_t{0};
        i += 64;
      } else {
        Set(i++);
      }
    }
  }
  void SetAll() { SetRange(0, bits_); }
  void Clear() { std::fill(words_.begin(), words_.end(), 0); }
  // Adds every bit of `other` that lies inside this bitmap.
  void OrWith(const DirtyBitmap& other) {
    const size_t n = std::min(words_.size(), other.words_.size());
    for (size_t i = 0; i < n; ++i) words_[i] |= other.words_[i];
    Resize(bits_);  // clear bits beyond size that `other` may have carried in the last word
  }
  void OrWord(size_t word_index, uint64_t word) { words_[word_index] |= word; }
  uint64_t Count() const {
    uint64_t n = 0;
    for (uint64_t w : words_) n += std::popcount(w);
    return n;
  }
  bool Any() const {
    for (uint64_t w : words_) {
      if (w) return true;
    }
    return false;
  }
  size_t word_count() const { return words_.size(); }
  uint64_t word(size_t i) const { return words_[i]; }

  // Calls fn(first, count) for every maximal run of set bits, in order.
  template <typename Fn>
  void ForEachRun(Fn&& fn) const {
    uint64_t i = 0;
    while (i < bits_) {
      const uint64_t w = words_[i / 64] >> (i % 64);
      if (w == 0) {
        i = (i / 64 + 1) * 64;
        continue;
      }
      i += std::countr_zero(w);
      if (i >= bits_) break;
      uint64_t start = i;
      while (i < bits_ && Test(i)) {
        const uint64_t rest = ~(words_[i / 64] >> (i % 64));
        i += rest == 0 ? 64 - (i % 64) : std::countr_zero(rest);
      }
      if (i > bits_) i = bits_;
      fn(start, i - start);
    }
  }

 private:
  uint64_t bits_ = 0;
  std::vector<uint64_t> words_;
};

}  // namespace ickpt
