// Rasterised line plots (see data/plot.h): Bresenham lines on an RGB canvas, text as the
// quads stb_easy_font produces, PNG through stb_image_write.
#include "scorch/data/plot.h"

#include <stb/stb_easy_font.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "scorch/core/error.h"
#include "scorch/data/image_grid.h"

namespace scorch::data {

namespace {

struct Canvas {
  int w, h;
  std::vector<unsigned char> px;
  Canvas(int w_, int h_) : w(w_), h(h_), px(static_cast<size_t>(w_ * h_ * 3), 255) {}
  void set(int x, int y, const unsigned char* c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    std::copy(c, c + 3, px.begin() + (static_cast<size_t>(y) * w + x) * 3);
  }
  void line(int x0, int y0, int x1, int y1, const unsigned char* c) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    while (true) {
      set(x0, y0, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; y0 += sy; }
    }
  }
  void text(int x, int y, const std::string& s, const unsigned char* c) {
    static char buf[60000];
    const int quads = stb_easy_font_print(0, 0, const_cast<char*>(s.c_str()), nullptr, buf, sizeof buf);
    for (int q = 0; q < quads; ++q) {
      const float* v0 = reinterpret_cast<const float*>(buf + q * 64);
      const float* v2 = reinterpret_cast<const float*>(buf + q * 64 + 32);
      for (int yy = static_cast<int>(v0[1]); yy < static_cast<int>(v2[1]); ++yy)
        for (int xx = static_cast<int>(v0[0]); xx < static_cast<int>(v2[0]); ++xx) set(x + xx, y + yy, c);
    }
  }
  static int text_width(const std::string& s) { return stb_easy_font_width(const_cast<char*>(s.c_str())); }
};

std::string tick_label(double v) {
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) return fmt::format("{:.1e}", v);
  return fmt::format("{:.4g}", v);
}

}  // namespace

void write_line_plot(const std::string& path, const std::string& title, const std::string& xlabel,
                     const std::string& ylabel, const std::vector<Series>& series, bool log_y) {
  const int W = 800, H = 480, L = 80, R = 20, T = 40, B = 50;
  Canvas cv(W, H);
  const unsigned char black[3] = {0, 0, 0}, grid[3] = {225, 225, 225};
  double x0 = std::numeric_limits<double>::max(), x1 = -x0, y0 = x0, y1 = -x0;
  auto fy = [&](double y) { return log_y ? std::log10(y) : y; };
  for (const auto& s : series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (log_y && s.y[i] <= 0)) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, fy(s.y[i]));
      y1 = std::max(y1, fy(s.y[i]));
    }
  }
  SCORCH_CHECK(x0 <= x1, "{}: nothing to plot", path);
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) { y0 -= 0.5; y1 += 0.5; }
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  auto px = [&](double x) { return L + static_cast<int>(std::lround((x - x0) / (x1 - x0) * (W - L - R))); };
  auto py = [&](double y) { return H - B - static_cast<int>(std::lround((fy(y) - y0) / (y1 - y0) * (H - T - B))); };
  for (int k = 0; k <= 5; ++k) {  // grid and ticks
    const double xv = x0 + (x1 - x0) * k / 5, yv_f = y0 + (y1 - y0) * k / 5;
    const double yv = log_y ? std::pow(10.0, yv_f) : yv_f;
    const int gx = px(xv), gy = py(yv);
    cv.line(gx, T, gx, H - B, grid);
    cv.line(L, gy, W - R, gy, grid);
    const auto xl = tick_label(xv), yl = tick_label(yv);
    cv.text(gx - Canvas::text_width(xl) / 2, H - B + 6, xl, black);
    cv.text(L - 6 - Canvas::text_width(yl), gy - 4, yl, black);
  }
  cv.line(L, T, L, H - B, black);
  cv.line(L, H - B, W - R, H - B, black);
  int legend_y = T + 6;
  for (const auto& s : series) {
    int lx = -1, ly = -1;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (log_y && s.y[i] <= 0)) continue;
      const int X = px(s.x[i]), Y = py(s.y[i]);
      if (lx >= 0) cv.line(lx, ly, X, Y, s.rgb);
      if (s.markers) {
        for (int dy = -3; dy <= 3; ++dy)
          for (int dx = -3; dx <= 3; ++dx) cv.set(X + dx, Y + dy, s.rgb);
      }
      lx = X;
      ly = Y;
    }
    cv.line(W - R - 150, legend_y + 4, W - R - 130, legend_y + 4, s.rgb);
    cv.text(W - R - 124, legend_y, s.name, black);
    legend_y += 14;
  }
  cv.text((W - Canvas::text_width(title)) / 2, 14, title, black);
  cv.text((W - Canvas::text_width(xlabel)) / 2, H - 20, xlabel, black);
  cv.text(8, T - 16, ylabel + (log_y ? " (log scale)" : ""), black);
  write_png(path, W, H, 3, cv.px.data());
}

}  // namespace scorch::data
