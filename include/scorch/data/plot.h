// Line plots as PNG (stb_image_write; labels drawn with stb_easy_font): the loss curve of a
// run, which people would rather look at than read from train_log.csv.
#pragma once
#include <string>
#include <vector>

namespace scorch::data {

struct Series {
  std::string name;
  std::vector<double> x, y;
  unsigned char rgb[3] = {31, 119, 180};
  bool markers = false;  // a filled square at every point (a lone point shows too)
};

// Writes `series` on shared axes to `path` (800x480 PNG): axis ticks with values, a title,
// a legend; y on a log scale when `log_y` (values <= 0 are left out).
void write_line_plot(const std::string& path, const std::string& title, const std::string& xlabel,
                     const std::string& ylabel, const std::vector<Series>& series, bool log_y);

}  // namespace scorch::data
