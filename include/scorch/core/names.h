// The one registry of names per concept (SDEs, models, losses, sampling methods,
// predictors, correctors, guidance modes). The config schema's allowed values, the
// factories' error messages, `--keys` and the tests all read these lists, so a name is
// spelled exactly once.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

namespace scorch::names {

using List = std::vector<std::string>;

inline const List& sdes() {
  static const List v{"vesde", "vpsde", "subvpsde"};
  return v;
}
inline const List& models() {
  static const List v{"ncsnpp", "unet", "mlp", "analytic_gmm"};
  return v;
}
// training.loss: denoising or sliced score matching (continuous time; training.continuous =
// false selects the discrete SMLD / DDPM losses whatever this says).
inline const List& losses() {
  static const List v{"dsm", "ssm"};
  return v;
}
// sampling.method: predictor-corrector, probability-flow RK45, and the fast samplers.
inline const List& methods() {
  static const List v{"pc", "ode", "ddim", "dpm_solver", "heun"};
  return v;
}
inline const List& predictors() {
  static const List v{"euler_maruyama", "reverse_diffusion", "ancestral_sampling", "none"};
  return v;
}
inline const List& correctors() {
  static const List v{"langevin", "ald", "none"};
  return v;
}

// "a | b | c", for help texts and errors.
// Where training data live while a job runs (data/source.h).
inline const List& data_sources() {
  static const List v{"auto", "memory", "node_shared", "stream"};
  return v;
}

inline std::string joined(const List& v, const char* sep = " | ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}
inline bool contains(const List& v, const std::string& name) { return std::find(v.begin(), v.end(), name) != v.end(); }

}  // namespace scorch::names
