// The config file: YAML through parse_config (which runs validate).
// Properties: an error names the source ("fuzz: ...") and is one line; a config that parses
// re-prints (config_yaml) to YAML that parses again, and that prints to the same text
// (parse -> print -> parse -> print is stable; every key and every policy parameter).
#include <cstdint>
#include <string>
#include <string_view>

#include "meshd/app/config.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd::app;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = parse_config(text, "fuzz");
  if (!c) {
    FUZZ_CHECK(c.error().code == "bad_config");
    FUZZ_CHECK(c.error().message.starts_with("fuzz: "));
    return 0;
  }
  const std::string printed = config_yaml(*c);
  auto again = parse_config(printed, "printed");
  if (!again) std::fprintf(stderr, "%s\n--\n%s\n", again.error().message.c_str(), printed.c_str());
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(config_yaml(*again) == printed);
  return 0;
}
