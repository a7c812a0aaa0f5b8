// Prometheus text exposition format 0.0.4, written at scrape time from the stats structs of
// each component. Stateless by design: the components own their counters, this only prints.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshd::app {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A cumulative-on-export histogram with fixed upper bounds (seconds, bytes, ...). Values above
// the last bound land in the +Inf bucket; NaN is ignored.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts; one more than bounds(): the last is +Inf.
  const std::vector<std::uint64_t>& buckets() const { return buckets_; }
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

class MetricsWriter {
 public:
  // Starts a metric family; its samples must follow before the next family starts.
  // `type` is "counter", "gauge" or "histogram". Counter names end in "_total" (promtool insists).
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, double value, const Labels& labels = {});
  // The _bucket (cumulative, le="..."), _sum and _count samples of one histogram series;
  // start the family with family(name, "histogram", help).
  void histogram(std::string_view name, const Histogram& h, const Labels& labels = {});

  // One-sample families, the common case.
  void counter(std::string_view name, std::string_view help, double value) {
    family(name, "counter", help);
    sample(name, value);
  }
  void gauge(std::string_view name, std::string_view help, double value) {
    family(name, "gauge", help);
    sample(name, value);
  }

  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

}  // namespace meshd::app
