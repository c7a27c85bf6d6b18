// `ickpt demo --workers N`: the distributed demo (cluster_demo.cc).
#pragma once

#include <cstdint>
#include <string>

namespace ickpt::cli {

struct ClusterDemoOptions {
  std::string repo;          // empty: ./ickpt-demo-<time>
  uint32_t workers = 4;      // > 1
  uint64_t table_bytes = 32ull << 20;  // each worker's embedding table
  uint64_t steps = 300;
  uint64_t seed = 1;
  bool chaos = true;
  bool json = false;
  std::string tracker = "auto";
  int64_t step_ms = 100;     // a worker's time per step (the input's pace)
  std::string interval = "2s";  // the coordinators' checkpoint interval
};

int RunClusterDemo(const ClusterDemoOptions& options);

}  // namespace ickpt::cli
