// A minimal hand-written SVG line chart (axes, ticks, labels, legend, polylines): enough for
// meshsim's two plots without a plotting library.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace meshd::sim {

struct SvgSeries {
  std::string name;
  std::string color;                              // CSS colour, e.g. "#1f77b4"
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in order
};

struct SvgChart {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<SvgSeries> series;
};

// Returns a complete standalone SVG document (800x500). Empty series draw empty axes.
std::string render_svg(const SvgChart& chart);

}  // namespace meshd::sim
