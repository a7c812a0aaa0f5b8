#include "meshd/app/metrics.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
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
  Histogram h({0.01, 0.1, 1});
  for (double v : {0.005, 0.01, 0.05, 2.0}) h.observe(v);
  w.family("meshd_latency_seconds", "histogram", "A histogram.");
  w.histogram("meshd_latency_seconds", h, {{"path", "push"}});
  w.histogram("meshd_latency_seconds", Histogram({0.01, 0.1, 1}), {{"path", "sync"}});
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

TEST(Metrics, HistogramBucketsAreUpperBoundsInclusiveAndCumulativeOnExport) {
  Histogram h({1, 0.1, 0.01});  // sorted on construction
  EXPECT_EQ(h.bounds(), (std::vector<double>{0.01, 0.1, 1}));
  for (double v : {0.0, 0.01, 0.011, 0.1, 5.0, std::nan("")}) h.observe(v);
  EXPECT_EQ(h.buckets(), (std::vector<std::uint64_t>{2, 2, 0, 1}));  // NaN ignored
  EXPECT_EQ(h.count(), 5u);
  EXPECT_DOUBLE_EQ(h.sum(), 5.121);
  MetricsWriter w;
  w.family("x_seconds", "histogram", "h");
  w.histogram("x_seconds", h, {{"path", "push"}});
  EXPECT_EQ(w.text(),
            "# HELP x_seconds h\n# TYPE x_seconds histogram\n"
            "x_seconds_bucket{path=\"push\",le=\"0.01\"} 2\n"
            "x_seconds_bucket{path=\"push\",le=\"0.1\"} 4\n"
            "x_seconds_bucket{path=\"push\",le=\"1\"} 4\n"
            "x_seconds_bucket{path=\"push\",le=\"+Inf\"} 5\n"
            "x_seconds_sum{path=\"push\"} 5.121\n"
            "x_seconds_count{path=\"push\"} 5\n");
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
