// Prometheus text exposition format 0.0.4, written at scrape time from the stats structs of
// each component. Stateless by design: the components own their counters, this only prints.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshd::app {

using Labels = std::vector<std::pair<std::string, std::string>>;

class MetricsWriter {
 public:
  // Starts a metric family; its samples must follow before the next family starts.
  // `type` is "counter" or "gauge". Counter names end in "_total" (promtool insists).
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, double value, const Labels& labels = {});

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
