#include "simulations/svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace meshd::sim {

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// "Nice" tick step (1, 2 or 5 x 10^k) giving about `target` ticks over [lo, hi].
double tick_step(double lo, double hi, int target) {
  const double raw = (hi - lo) / target;
  if (raw <= 0) return 1;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  const double n = raw / mag;
  return (n < 1.5 ? 1 : n < 3.5 ? 2 : n < 7.5 ? 5 : 10) * mag;
}

std::string fmt(double v) {
  char buf[32];
  if (std::fabs(v) >= 1e6 || (std::fabs(v) < 1e-3 && v != 0))
    std::snprintf(buf, sizeof buf, "%.2g", v);
  else
    std::snprintf(buf, sizeof buf, "%g", std::round(v * 1000) / 1000);
  return buf;
}

}  // namespace

std::string render_svg(const SvgChart& c) {
  constexpr double W = 800, H = 500, L = 90, R = 30, T = 50, B = 70;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool first = true;
  for (const auto& s : c.series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      if (first) x0 = x1 = x, y1 = y, first = false;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y1 = std::max(y1, y);
      y0 = std::min(y0, y);
    }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  const double xs = tick_step(x0, x1, 8), ys = tick_step(y0, y1, 6);
  x0 = std::floor(x0 / xs) * xs, x1 = std::ceil(x1 / xs) * xs;
  y0 = std::floor(y0 / ys) * ys, y1 = std::ceil(y1 / ys) * ys;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" viewBox=\"0 0 " << W << ' ' << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << W / 2 << "\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">"
    << escape(c.title) << "</text>\n";
  // Grid and ticks.
  for (double x = x0; x <= x1 + xs / 2; x += xs)
    o << "<line x1=\"" << px(x) << "\" y1=\"" << T << "\" x2=\"" << px(x) << "\" y2=\"" << H - B
      << "\" stroke=\"#eee\"/><text x=\"" << px(x) << "\" y=\"" << H - B + 18
      << "\" text-anchor=\"middle\">" << fmt(x) << "</text>\n";
  for (double y = y0; y <= y1 + ys / 2; y += ys)
    o << "<line x1=\"" << L << "\" y1=\"" << py(y) << "\" x2=\"" << W - R << "\" y2=\"" << py(y)
      << "\" stroke=\"#eee\"/><text x=\"" << L - 6 << "\" y=\"" << py(y) + 4
      << "\" text-anchor=\"end\">" << fmt(y) << "</text>\n";
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\""
    << H - T - B << "\" fill=\"none\" stroke=\"#333\"/>\n";
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 25 << "\" text-anchor=\"middle\">"
    << escape(c.x_label) << "</text>\n";
  o << "<text transform=\"translate(20," << (T + H - B) / 2
    << ") rotate(-90)\" text-anchor=\"middle\">" << escape(c.y_label) << "</text>\n";
  // Series and legend.
  for (std::size_t i = 0; i < c.series.size(); ++i) {
    const auto& s = c.series[i];
    o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\" points=\"";
    for (auto [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) o << px(x) << ',' << py(y) << ' ';
    o << "\"/>\n";
    const double ly = T + 16 + 18 * double(i);
    o << "<line x1=\"" << L + 12 << "\" y1=\"" << ly << "\" x2=\"" << L + 36 << "\" y2=\"" << ly
      << "\" stroke=\"" << s.color << "\" stroke-width=\"3\"/><text x=\"" << L + 42 << "\" y=\""
      << ly + 4 << "\">" << escape(s.name) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace meshd::sim
