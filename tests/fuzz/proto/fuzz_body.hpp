// One fuzz iteration over everything proto/ does with bytes from a peer: frame decoding at
// arbitrary split points, Frame parsing, envelope signer lookup, verification and body
// decoding, cert decoding and verification. Shared by the libFuzzer target (clang) and the
// deterministic smoke test (any compiler). Must never crash, leak or hit UB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace meshd::proto::fuzz {

// What one input reached, so a deterministic run can check it exercised the accepting paths
// and not only the rejecting ones.
struct Reached {
  std::size_t frames = 0;    // frames parsed (whole input, and from the split stream)
  std::size_t verified = 0;  // envelopes whose signature verified
  std::size_t rejected = 0;  // decoder errors and frames that did not parse
};

Reached fuzz_one(const std::uint8_t* data, std::size_t size);

// Well-formed seeds (encoded frames with signed envelopes, certs, vectors) for mutation.
std::vector<std::vector<std::uint8_t>> seed_inputs();

}  // namespace meshd::proto::fuzz
