// One fuzz iteration over everything proto/ does with bytes from a peer: frame decoding at
// arbitrary split points, Frame parsing, envelope signer lookup, verification and body
// decoding, cert decoding and verification. Shared by the libFuzzer target (clang) and the
// deterministic smoke test (any compiler). Must never crash, leak or hit UB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace meshd::proto::fuzz {

void fuzz_one(const std::uint8_t* data, std::size_t size);

// Well-formed seeds (encoded frames with signed envelopes, certs, vectors) for mutation.
std::vector<std::vector<std::uint8_t>> seed_inputs();

}  // namespace meshd::proto::fuzz
