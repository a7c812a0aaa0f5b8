// One fuzz input through the CrowdSec stream parser and, when it parses, the decision table
// (full and delta answers, then expiry). Shared by the libFuzzer target and the smoke test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace meshd::sensor::fuzz {

// Returns true when the input parsed as a stream (so callers can check both paths ran).
bool fuzz_one(const std::uint8_t* data, std::size_t size);
std::vector<std::string> seed_inputs();

}  // namespace meshd::sensor::fuzz
