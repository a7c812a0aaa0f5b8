// Deterministic randomness for the simulator: one independent stream per purpose, all
// derived from the scenario seed, so adding draws in one part (e.g. link jitter) never
// shifts another part (e.g. who detects what). Never std::random_device.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace meshd::sim {

// SplitMix64 step: a good 64-bit mixer, used to derive stream seeds and cheap hashes.
constexpr std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr std::uint64_t mix64(std::uint64_t x) {
  return splitmix64(x);
}

// FNV-1a of a purpose name, so streams are named in code ("overlay", "jitter", ...).
constexpr std::uint64_t purpose_hash(std::string_view purpose) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : purpose) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h;
}

// xoshiro256** generator; satisfies UniformRandomBitGenerator.
class Rng {
 public:
  using result_type = std::uint64_t;
  Rng(std::uint64_t seed, std::string_view purpose, std::uint64_t sub = 0) {
    std::uint64_t st = seed ^ purpose_hash(purpose) ^ mix64(sub + 0x1234567ULL);
    for (auto& w : s_) w = splitmix64(st);
  }
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~0ULL; }
  result_type operator()() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias < 2^-64 * n).
  std::uint64_t below(std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>((*this)()) * n) >> 64);
  }
  bool chance(double p) { return uniform() < p; }
  // Standard normal (Box-Muller; one value per call keeps the stream simple).
  double normal() {
    double u1 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * uniform());
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace meshd::sim
