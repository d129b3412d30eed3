// HDF5 C API behind RAII handles; every failure becomes a scorch::Error naming the file,
// the object and the innermost HDF5 message (e.g. a Fletcher-32 checksum failure).
#include "scorch/io/hdf5.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "scorch/core/error.h"

namespace scorch::h5 {

namespace {

struct Quiet {
  Quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const Quiet quiet_hdf5_errors;

herr_t walk_cb(unsigned n, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && e->desc) *out = e->desc;  // innermost frame
  return 0;
}

hid_t h5_type(torch::ScalarType t) {
  switch (t) {
    case torch::kUInt8: return H5T_NATIVE_UINT8;
    case torch::kInt64: return H5T_NATIVE_INT64;
    case torch::kFloat32: return H5T_NATIVE_FLOAT;
    case torch::kFloat64: return H5T_NATIVE_DOUBLE;
    case torch::kInt32: return H5T_NATIVE_INT32;
    default: SCORCH_THROW("HDF5: unsupported tensor dtype {}", c10::toString(t));
  }
}

torch::ScalarType torch_type(hid_t dtype, const std::string& what) {
  H5T_class_t cls = H5Tget_class(dtype);
  size_t size = H5Tget_size(dtype);
  if (cls == H5T_FLOAT && size == 4) return torch::kFloat32;
  if (cls == H5T_FLOAT && size == 8) return torch::kFloat64;
  if (cls == H5T_INTEGER && size == 1 && H5Tget_sign(dtype) == H5T_SGN_NONE) return torch::kUInt8;
  if (cls == H5T_INTEGER && size == 8) return torch::kInt64;
  if (cls == H5T_INTEGER && size == 4) return torch::kInt32;
  SCORCH_THROW("{}: unsupported HDF5 element type (class {}, {} bytes)", what, static_cast<int>(cls), size);
}

Handle lcpl() {
  Handle p(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(p.id(), 1);
  return p;
}

Handle open_dataset(hid_t loc, const std::string& name, const std::string& file) {
  SCORCH_CHECK(exists(loc, name), "{}: dataset '{}' is missing", file, name);
  hid_t d = H5Dopen2(loc, name.c_str(), H5P_DEFAULT);
  SCORCH_CHECK(d >= 0, "{}: cannot open dataset '{}': {}", file, name, last_error());
  return Handle(d, H5Dclose);
}

torch::Tensor read_selection(hid_t d, hid_t filespace, std::vector<int64_t> dims, const std::string& what) {
  Handle dtype(H5Dget_type(d), H5Tclose);
  auto st = torch_type(dtype.id(), what);
  auto t = torch::empty(dims, torch::TensorOptions().dtype(st));
  if (t.numel() == 0) return t;
  std::vector<hsize_t> hd(dims.begin(), dims.end());
  Handle mem(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr),
             H5Sclose);
  herr_t rc = H5Dread(d, h5_type(st), mem.id(), filespace, H5P_DEFAULT, t.data_ptr());
  SCORCH_CHECK(rc >= 0, "{}: read failed, the file is corrupted or truncated: {}", what, last_error());
  return t;
}

void write_attr(hid_t loc, const std::string& name, hid_t type, const void* data) {
  if (H5Aexists(loc, name.c_str()) > 0) H5Adelete(loc, name.c_str());
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(loc, name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  SCORCH_CHECK(a.id() >= 0, "HDF5: cannot create attribute '{}': {}", name, last_error());
  SCORCH_CHECK(H5Awrite(a.id(), type, data) >= 0, "HDF5: cannot write attribute '{}': {}", name, last_error());
}

Handle open_attr(hid_t loc, const std::string& name, const std::string& file) {
  SCORCH_CHECK(H5Aexists(loc, name.c_str()) > 0, "{}: attribute '{}' is missing", file, name);
  Handle a(H5Aopen(loc, name.c_str(), H5P_DEFAULT), H5Aclose);
  SCORCH_CHECK(a.id() >= 0, "{}: cannot open attribute '{}': {}", file, name, last_error());
  return a;
}

}  // namespace

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_) closer_(id_);
  id_ = H5I_INVALID_HID;
}

std::string last_error() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &msg);
  return msg.empty() ? "unknown HDF5 error" : msg;
}

File File::create(const std::string& path) {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id());
  SCORCH_CHECK(f >= 0, "cannot create HDF5 file '{}': {}", path, last_error());
  File out;
  out.h_ = Handle(f, H5Fclose);
  out.path_ = path;
  return out;
}

File File::open_read(const std::string& path) {
  SCORCH_CHECK(std::filesystem::exists(path), "file '{}' does not exist", path);
  htri_t is = H5Fis_hdf5(path.c_str());
  SCORCH_CHECK(is > 0, "'{}' is not an HDF5 file (or its header is corrupted)", path);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  SCORCH_CHECK(f >= 0, "cannot open HDF5 file '{}' (truncated or corrupted?): {}", path, last_error());
  File out;
  out.h_ = Handle(f, H5Fclose);
  out.path_ = path;
  return out;
}

bool exists(hid_t loc, const std::string& name) {
  // Check every prefix: H5Lexists fails on a path whose parent is missing.
  size_t pos = 0;
  while (true) {
    pos = name.find('/', pos + 1);
    std::string prefix = name.substr(0, pos);
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

std::vector<std::string> list(hid_t loc, const std::string& group) {
  std::vector<std::string> names;
  if (!exists(loc, group)) return names;
  Handle g(H5Gopen2(loc, group.c_str(), H5P_DEFAULT), H5Gclose);
  SCORCH_CHECK(g.id() >= 0, "HDF5: cannot open group '{}': {}", group, last_error());
  H5G_info_t info;
  SCORCH_CHECK(H5Gget_info(g.id(), &info) >= 0, "HDF5: cannot list group '{}': {}", group, last_error());
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t n = H5Lget_name_by_idx(g.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    SCORCH_CHECK(n >= 0, "HDF5: cannot list group '{}': {}", group, last_error());
    std::string s(static_cast<size_t>(n) + 1, '\0');
    H5Lget_name_by_idx(g.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), s.size(), H5P_DEFAULT);
    s.resize(static_cast<size_t>(n));
    names.push_back(s);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<int64_t> shape(hid_t loc, const std::string& name) {
  Handle d = open_dataset(loc, name, "HDF5");
  Handle space(H5Dget_space(d.id()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.id());
  SCORCH_CHECK(nd >= 0, "HDF5: cannot read the shape of '{}': {}", name, last_error());
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

void write_tensor(hid_t loc, const std::string& name, const torch::Tensor& t_in) {
  auto t = t_in.detach().to(torch::kCPU).contiguous();
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!dims.empty() && t.numel() > 0) {
    // Row chunks of ~1 MiB: small tensors are one chunk; big datasets stay readable by rows.
    std::vector<hsize_t> chunk = dims;
    int64_t row_bytes = t.numel() / t.size(0) * static_cast<int64_t>(t.element_size());
    chunk[0] = static_cast<hsize_t>(std::clamp<int64_t>((1 << 20) / std::max<int64_t>(row_bytes, 1), 1, t.size(0)));
    H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
    H5Pset_fletcher32(dcpl.id());
  }
  auto lc = lcpl();
  hid_t type = h5_type(t.scalar_type());
  Handle d(H5Dcreate2(loc, name.c_str(), type, space.id(), lc.id(), dcpl.id(), H5P_DEFAULT), H5Dclose);
  SCORCH_CHECK(d.id() >= 0, "HDF5: cannot create dataset '{}': {}", name, last_error());
  if (t.numel() > 0) {
    SCORCH_CHECK(H5Dwrite(d.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) >= 0,
                 "HDF5: cannot write dataset '{}': {}", name, last_error());
  }
}

torch::Tensor read_tensor(hid_t loc, const std::string& name, const std::string& file) {
  Handle d = open_dataset(loc, name, file);
  Handle space(H5Dget_space(d.id()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.id());
  SCORCH_CHECK(nd >= 0, "{}: cannot read the shape of '{}': {}", file, name, last_error());
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  return read_selection(d.id(), H5S_ALL, std::vector<int64_t>(dims.begin(), dims.end()),
                        fmt::format("{}: dataset '{}'", file, name));
}

torch::Tensor read_rows(hid_t loc, const std::string& name, int64_t start, int64_t count, const std::string& file) {
  Handle d = open_dataset(loc, name, file);
  Handle space(H5Dget_space(d.id()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.id());
  SCORCH_CHECK(nd >= 1, "{}: dataset '{}' has no rows", file, name);
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  SCORCH_CHECK(start >= 0 && count >= 0 && static_cast<hsize_t>(start + count) <= dims[0],
               "{}: rows [{}, {}) are outside dataset '{}' of {} rows", file, start, start + count, name, dims[0]);
  std::vector<hsize_t> off(dims.size(), 0), cnt = dims;
  off[0] = static_cast<hsize_t>(start);
  cnt[0] = static_cast<hsize_t>(count);
  H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, off.data(), nullptr, cnt.data(), nullptr);
  return read_selection(d.id(), space.id(), std::vector<int64_t>(cnt.begin(), cnt.end()),
                        fmt::format("{}: dataset '{}'", file, name));
}

void write_string(hid_t loc, const std::string& name, const std::string& s) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id(), std::max<size_t>(s.size(), 1));
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  auto lc = lcpl();
  Handle d(H5Dcreate2(loc, name.c_str(), type.id(), space.id(), lc.id(), H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  SCORCH_CHECK(d.id() >= 0, "HDF5: cannot create string '{}': {}", name, last_error());
  std::string buf = s.empty() ? std::string(1, '\0') : s;
  SCORCH_CHECK(H5Dwrite(d.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) >= 0,
               "HDF5: cannot write string '{}': {}", name, last_error());
}

std::string read_string(hid_t loc, const std::string& name, const std::string& file) {
  Handle d = open_dataset(loc, name, file);
  Handle type(H5Dget_type(d.id()), H5Tclose);
  SCORCH_CHECK(H5Tget_class(type.id()) == H5T_STRING && !H5Tis_variable_str(type.id()),
               "{}: '{}' is not a fixed-length string", file, name);
  std::string s(H5Tget_size(type.id()), '\0');
  SCORCH_CHECK(H5Dread(d.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, s.data()) >= 0,
               "{}: cannot read '{}' (corrupted?): {}", file, name, last_error());
  s.resize(std::strlen(s.c_str()));
  return s;
}

void set_attr(hid_t loc, const std::string& name, int64_t v) { write_attr(loc, name, H5T_NATIVE_INT64, &v); }
void set_attr(hid_t loc, const std::string& name, double v) { write_attr(loc, name, H5T_NATIVE_DOUBLE, &v); }
void set_attr(hid_t loc, const std::string& name, const std::string& v) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id(), std::max<size_t>(v.size(), 1));
  std::string buf = v.empty() ? std::string(1, '\0') : v;
  write_attr(loc, name, type.id(), buf.data());
}

bool has_attr(hid_t loc, const std::string& name) { return H5Aexists(loc, name.c_str()) > 0; }

int64_t get_attr_int(hid_t loc, const std::string& name, const std::string& file) {
  Handle a = open_attr(loc, name, file);
  int64_t v = 0;
  SCORCH_CHECK(H5Aread(a.id(), H5T_NATIVE_INT64, &v) >= 0, "{}: cannot read attribute '{}'", file, name);
  return v;
}

double get_attr_double(hid_t loc, const std::string& name, const std::string& file) {
  Handle a = open_attr(loc, name, file);
  double v = 0;
  SCORCH_CHECK(H5Aread(a.id(), H5T_NATIVE_DOUBLE, &v) >= 0, "{}: cannot read attribute '{}'", file, name);
  return v;
}

std::string get_attr_string(hid_t loc, const std::string& name, const std::string& file) {
  Handle a = open_attr(loc, name, file);
  Handle type(H5Aget_type(a.id()), H5Tclose);
  SCORCH_CHECK(H5Tget_class(type.id()) == H5T_STRING && !H5Tis_variable_str(type.id()),
               "{}: attribute '{}' is not a fixed-length string", file, name);
  std::string s(H5Tget_size(type.id()), '\0');
  SCORCH_CHECK(H5Aread(a.id(), type.id(), s.data()) >= 0, "{}: cannot read attribute '{}'", file, name);
  s.resize(std::strlen(s.c_str()));
  return s;
}

void commit_file(const std::string& tmp, const std::string& final_path) {
  int fd = ::open(tmp.c_str(), O_RDONLY);
  SCORCH_CHECK(fd >= 0, "cannot reopen '{}' to sync it", tmp);
  int rc = ::fsync(fd);
  ::close(fd);
  SCORCH_CHECK(rc == 0, "fsync of '{}' failed", tmp);
  std::error_code ec;
  std::filesystem::rename(tmp, final_path, ec);
  SCORCH_CHECK(!ec, "cannot rename '{}' to '{}': {}", tmp, final_path, ec.message());
  auto dir = std::filesystem::path(final_path).parent_path();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_atomically(const std::string& path, const std::function<void(hid_t)>& fill) {
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  const std::string tmp = path + ".tmp";
  try {
    auto f = File::create(tmp);
    fill(f.id());
    f.close();
    commit_file(tmp, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace scorch::h5
