// libFuzzer entry (clang only): run with e.g. `crowdsec_fuzzer -max_total_time=60 corpus/`.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/crowdsec/fuzz_body.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  meshd::sensor::fuzz::fuzz_one(data, size);
  return 0;
}
