#include "meshd/app/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace meshd::app {
namespace {

void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (quote && c == '"')
      out += "\\\"";
    else
      out += c;
  }
}

void append_number(std::string& out, double v) {
  if (std::isnan(v))
    out += "NaN";
  else if (std::isinf(v))
    out += v > 0 ? "+Inf" : "-Inf";
  else if (v == std::floor(v) && std::fabs(v) < 1e15)
    out += std::to_string(static_cast<long long>(v));
  else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.12g", v);
    out += buf;
  }
}

}  // namespace

void MetricsWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_escaped(out_, help, false);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void MetricsWriter::sample(std::string_view name, double value, const Labels& labels) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first;
      out_ += "=\"";
      append_escaped(out_, labels[i].second, true);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  append_number(out_, value);
  out_ += '\n';
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(bounds_.size() + 1, 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double value) {
  if (std::isnan(value)) return;
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);  // first bound >= value
  ++buckets_[static_cast<std::size_t>(it - bounds_.begin())];
  ++count_;
  sum_ += value;
}

void MetricsWriter::histogram(std::string_view name, const Histogram& h, const Labels& labels) {
  const std::string base(name);
  Labels with_le = labels;
  with_le.emplace_back("le", "");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
    cumulative += h.buckets()[i];
    std::string le;
    if (i < h.bounds().size())
      append_number(le, h.bounds()[i]);
    else
      le = "+Inf";
    with_le.back().second = le;
    sample(base + "_bucket", static_cast<double>(cumulative), with_le);
  }
  sample(base + "_sum", h.sum(), labels);
  sample(base + "_count", static_cast<double>(h.count()), labels);
}

}  // namespace meshd::app
