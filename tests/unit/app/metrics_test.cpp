#include "meshd/app/metrics.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace meshd::app {
namespace {

MetricsWriter sample_page() {
  MetricsWriter w;
  w.counter("meshd_claims_received_total", "Claims received from peers.", 42);
  w.gauge("meshd_blocks_enforced", "Blocks enforced now.", 3);
  w.family("meshd_frames_rejected_total", "counter", "Frames rejected, by reason.");
  w.sample("meshd_frames_rejected_total", 1, {{"reason", "frame_too_large"}});
  w.sample("meshd_frames_rejected_total", 2, {{"reason", "quote\"back\\slash\nnewline"}});
  w.gauge("meshd_score", "A fractional gauge.", 0.125);
  return w;
}

TEST(Metrics, WritesTextFormatWithEscaping) {
  auto text = sample_page().text();
  EXPECT_NE(
      text.find("# TYPE meshd_claims_received_total counter\nmeshd_claims_received_total 42\n"),
      std::string::npos);
  EXPECT_NE(text.find(R"(reason="quote\"back\\slash\nnewline")"), std::string::npos);
  EXPECT_NE(text.find("meshd_score 0.125\n"), std::string::npos);
}

#ifdef PROMTOOL_PATH
TEST(Metrics, PassesPromtoolCheckMetrics) {
  std::string path = "/tmp/meshd-metrics-" + std::to_string(::getpid()) + ".txt";
  std::ofstream(path) << sample_page().text();
  std::string cmd = std::string(PROMTOOL_PATH) + " check metrics < " + path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int rc = ::pclose(p);
  std::remove(path.c_str());
  EXPECT_EQ(rc, 0) << out;
}
#endif

}  // namespace
}  // namespace meshd::app
