// Memory facts several layers use: the page size that madvise and pagemap ranges are cut to, the
// MADV_POPULATE_WRITE constant for headers older than Linux 5.14 (Debian 12's have it), and how
// much physical memory the machine has.
//
// Thread safety: constants and a pure function.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace ickpt {

// The base page size of the machines ickpt runs on (x86-64 and arm64 with 4 KiB pages).
inline constexpr uint64_t kPageBytes = 4096;

// Bytes of physical memory of this machine; 0 if unknown.
inline uint64_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

}  // namespace ickpt
