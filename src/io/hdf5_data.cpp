// HDF5 datasets as tensors: whole tensors (chunked, Fletcher-32, no timestamps, so the same
// content gives the same bytes), datasets created once and written in rows, strings, the
// checks of what a file claims to store, and the streaming RowReader. Files, attributes and
// atomic writes are in io/hdf5.cpp.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "hdf5_detail.h"
#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/io/hdf5.h"

namespace scorch::h5 {

namespace {

using detail::quiet_this_thread;

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

// "int8 (signed 8-bit integers)", "16-bit floats", "strings", ... for messages.
std::string type_words(hid_t dtype) {
  const H5T_class_t cls = H5Tget_class(dtype);
  const size_t bits = H5Tget_size(dtype) * 8;
  if (cls == H5T_INTEGER) {
    const bool sign = H5Tget_sign(dtype) != H5T_SGN_NONE;
    return fmt::format("{}int{} ({} {}-bit integers)", sign ? "" : "u", bits, sign ? "signed" : "unsigned", bits);
  }
  if (cls == H5T_FLOAT) return fmt::format("float{} ({}-bit floats)", bits, bits);
  if (cls == H5T_STRING) return "strings";
  if (cls == H5T_COMPOUND) return "compound records";
  if (cls == H5T_ENUM) return "enumerations (h5py stores booleans so)";
  return fmt::format("HDF5 class {} of {} bytes", static_cast<int>(cls), bits / 8);
}

torch::ScalarType torch_type(hid_t dtype, const std::string& what) {
  H5T_class_t cls = H5Tget_class(dtype);
  size_t size = H5Tget_size(dtype);
  if (cls == H5T_FLOAT && size == 4) return torch::kFloat32;
  if (cls == H5T_FLOAT && size == 8) return torch::kFloat64;
  if (cls == H5T_INTEGER && size == 1 && H5Tget_sign(dtype) == H5T_SGN_NONE) return torch::kUInt8;
  if (cls == H5T_INTEGER && size == 8) return torch::kInt64;
  if (cls == H5T_INTEGER && size == 4) return torch::kInt32;
  SCORCH_THROW("{}: elements are {}, which scorch does not read (uint8, int32, int64, float32 or float64)", what,
               type_words(dtype));
}

// Creates the missing groups on the way to `name` ("a/b/c" -> a, a/b) without timestamps,
// so that the same content always gives the same bytes.
void make_parents(hid_t loc, const std::string& name) {
  size_t pos = 0;
  while ((pos = name.find('/', pos + 1)) != std::string::npos) {
    std::string prefix = name.substr(0, pos);
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) > 0) continue;
    Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
    H5Pset_obj_track_times(gcpl.id(), 0);
    Handle g(H5Gcreate2(loc, prefix.c_str(), H5P_DEFAULT, gcpl.id(), H5P_DEFAULT), H5Gclose);
    SCORCH_CHECK(g.id() >= 0, "HDF5: cannot create group '{}': {}", prefix, last_error());
    SCORCH_CHECK(g.close() >= 0, "HDF5: cannot write group '{}': {}", prefix, last_error());
  }
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

}  // namespace

std::vector<int64_t> shape(hid_t loc, const std::string& name) {
  Handle d = open_dataset(loc, name, "HDF5");
  Handle space(H5Dget_space(d.id()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.id());
  SCORCH_CHECK(nd >= 0, "HDF5: cannot read the shape of '{}': {}", name, last_error());
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

size_t element_size(hid_t loc, const std::string& name) {
  Handle d = open_dataset(loc, name, "HDF5");
  Handle type(H5Dget_type(d.id()), H5Tclose);
  return H5Tget_size(type.id());
}

torch::ScalarType stored_dtype(hid_t loc, const std::string& name, const std::string& file) {
  Handle d = open_dataset(loc, name, file);
  Handle type(H5Dget_type(d.id()), H5Tclose);
  return torch_type(type.id(), fmt::format("{}: dataset '{}'", file, name));
}

std::string stored_type_words(hid_t loc, const std::string& name, const std::string& file) {
  Handle d = open_dataset(loc, name, file);
  Handle type(H5Dget_type(d.id()), H5Tclose);
  return type_words(type.id());
}

void check_stored(hid_t loc, const std::string& name, const std::string& file) {
  Handle d = open_dataset(loc, name, file);
  Handle space(H5Dget_space(d.id()), H5Sclose);
  Handle dcpl(H5Dget_create_plist(d.id()), H5Pclose);
  Handle type(H5Dget_type(d.id()), H5Tclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.id());
  SCORCH_CHECK(n >= 0, "{}: dataset '{}' has an unreadable shape", file, name);
  if (n == 0) return;
  const auto raw = static_cast<double>(n) * static_cast<double>(H5Tget_size(type.id()));
  switch (H5Pget_layout(dcpl.id())) {
    case H5D_CHUNKED: {
      const int nd = H5Sget_simple_extent_ndims(space.id());
      std::vector<hsize_t> dims(static_cast<size_t>(nd)), chunk(static_cast<size_t>(nd));
      H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
      H5Pget_chunk(dcpl.id(), nd, chunk.data());
      double expected = 1;
      for (int i = 0; i < nd; ++i) expected *= std::ceil(static_cast<double>(dims[i]) / static_cast<double>(chunk[i]));
      hsize_t stored = 0;
      SCORCH_CHECK(H5Dget_num_chunks(d.id(), space.id(), &stored) >= 0, "{}: cannot count the chunks of '{}': {}", file,
                   name, last_error());
      SCORCH_CHECK(static_cast<double>(stored) >= expected,
                   "{}: dataset '{}' claims {} elements in {} chunks but only {} chunks were ever written: the file is "
                   "incomplete (the rest would read as fill values)",
                   file, name, n, static_cast<int64_t>(expected), stored);
      break;
    }
    case H5D_CONTIGUOUS: {
      const auto stored = static_cast<double>(H5Dget_storage_size(d.id()));
      SCORCH_CHECK(stored >= raw, "{}: dataset '{}' claims {:.0f} bytes but {:.0f} are stored: the file is incomplete",
                   file, name, raw, stored);
      break;
    }
    case H5D_VIRTUAL: {
      size_t count = 0;
      H5Pget_virtual_count(dcpl.id(), &count);
      const auto dir = std::filesystem::path(file).parent_path();
      for (size_t i = 0; i < count; ++i) {
        ssize_t len = H5Pget_virtual_filename(dcpl.id(), i, nullptr, 0);
        std::string src(static_cast<size_t>(std::max<ssize_t>(len, 0)) + 1, '\0');
        H5Pget_virtual_filename(dcpl.id(), i, src.data(), src.size());
        src.resize(static_cast<size_t>(std::max<ssize_t>(len, 0)));
        if (src == ".") continue;
        const bool found = std::filesystem::exists(src) || std::filesystem::exists(dir / src);
        SCORCH_CHECK(found, "{}: virtual dataset '{}' maps source file '{}', which does not exist (its rows would read "
                     "as fill values)", file, name, src);
      }
      break;
    }
    default: break;
  }
}

void write_tensors(hid_t loc, const std::string& group, const std::map<std::string, torch::Tensor>& m) {
  if (m.empty()) create_group(loc, group);  // e.g. a classifier has no EMA or optimizer state
  for (const auto& [name, t] : m) write_tensor(loc, group + "/" + name, t);
}

std::map<std::string, torch::Tensor> read_tensors(hid_t loc, const std::string& group, const std::string& file) {
  std::map<std::string, torch::Tensor> m;
  for (const auto& name : list(loc, group)) m[name] = read_tensor(loc, group + "/" + name, file);
  return m;
}

void write_tensor(hid_t loc, const std::string& name, const torch::Tensor& t_in, int64_t chunk_bytes) {
  auto t = t_in.detach().to(torch::kCPU).contiguous();
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!dims.empty() && t.numel() > 0) {
    // Row chunks of ~chunk_bytes: small tensors are one chunk; big datasets stay readable by rows.
    std::vector<hsize_t> chunk = dims;
    int64_t row_bytes = t.numel() / t.size(0) * static_cast<int64_t>(t.element_size());
    chunk[0] = static_cast<hsize_t>(std::clamp<int64_t>(chunk_bytes / std::max<int64_t>(row_bytes, 1), 1, t.size(0)));
    H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
    H5Pset_fletcher32(dcpl.id());
  }
  H5Pset_obj_track_times(dcpl.id(), 0);
  make_parents(loc, name);
  hid_t type = h5_type(t.scalar_type());
  Handle d(H5Dcreate2(loc, name.c_str(), type, space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT), H5Dclose);
  SCORCH_CHECK(d.id() >= 0, "HDF5: cannot create dataset '{}': {}", name, last_error());
  if (t.numel() > 0) {
    SCORCH_CHECK(H5Dwrite(d.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) >= 0,
                 "HDF5: cannot write dataset '{}': {}", name, last_error());
  }
  // Closing writes the cached chunks: a full disk fails here, not in H5Dwrite.
  SCORCH_CHECK(d.close() >= 0, "HDF5: cannot write dataset '{}' (disk full?): {}", name, last_error());
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

void create_group(hid_t loc, const std::string& name) { make_parents(loc, name + "/_"); }

void create_dataset(hid_t loc, const std::string& name, torch::ScalarType dtype, const std::vector<int64_t>& shape,
                    int64_t chunk_bytes) {
  SCORCH_CHECK(!shape.empty() && shape[0] > 0, "HDF5: create_dataset '{}' needs rows", name);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  int64_t row_bytes = static_cast<int64_t>(c10::elementSize(dtype));
  for (size_t i = 1; i < shape.size(); ++i) row_bytes *= shape[i];
  std::vector<hsize_t> chunk = dims;
  chunk[0] = static_cast<hsize_t>(std::clamp<int64_t>(chunk_bytes / std::max<int64_t>(row_bytes, 1), 1, shape[0]));
  H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
  H5Pset_fletcher32(dcpl.id());
  H5Pset_obj_track_times(dcpl.id(), 0);
  make_parents(loc, name);
  Handle d(H5Dcreate2(loc, name.c_str(), h5_type(dtype), space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT), H5Dclose);
  SCORCH_CHECK(d.id() >= 0, "HDF5: cannot create dataset '{}': {}", name, last_error());
  SCORCH_CHECK(d.close() >= 0, "HDF5: cannot create dataset '{}' (disk full?): {}", name, last_error());
}

int64_t chunk_rows(hid_t loc, const std::string& name) {
  Handle d = open_dataset(loc, name, "HDF5");
  Handle dcpl(H5Dget_create_plist(d.id()), H5Pclose);
  if (H5Pget_layout(dcpl.id()) != H5D_CHUNKED) return 0;
  hsize_t chunk[H5S_MAX_RANK] = {};
  return H5Pget_chunk(dcpl.id(), H5S_MAX_RANK, chunk) > 0 ? static_cast<int64_t>(chunk[0]) : 0;
}

void write_rows(hid_t loc, const std::string& name, int64_t start, const torch::Tensor& rows_in) {
  auto t = rows_in.detach().to(torch::kCPU).contiguous();
  Handle d = open_dataset(loc, name, "(being written)");
  Handle space(H5Dget_space(d.id()), H5Sclose);
  const int nd = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  SCORCH_CHECK(nd == t.dim() && start >= 0 && static_cast<hsize_t>(start + t.size(0)) <= dims[0],
               "HDF5: rows [{}, {}) of shape {} do not fit dataset '{}'", start, start + t.size(0), c10::str(t.sizes()),
               name);
  std::vector<hsize_t> off(dims.size(), 0), cnt(t.sizes().begin(), t.sizes().end());
  off[0] = static_cast<hsize_t>(start);
  H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, off.data(), nullptr, cnt.data(), nullptr);
  Handle mem(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), H5Sclose);
  SCORCH_CHECK(H5Dwrite(d.id(), h5_type(t.scalar_type()), mem.id(), space.id(), H5P_DEFAULT, t.data_ptr()) >= 0,
               "HDF5: cannot write rows of '{}': {}", name, last_error());
  SCORCH_CHECK(d.close() >= 0, "HDF5: cannot write dataset '{}' (disk full?): {}", name, last_error());
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
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(dcpl.id(), 0);
  make_parents(loc, name);
  Handle d(H5Dcreate2(loc, name.c_str(), type.id(), space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT), H5Dclose);
  SCORCH_CHECK(d.id() >= 0, "HDF5: cannot create string '{}': {}", name, last_error());
  std::string buf = s.empty() ? std::string(1, '\0') : s;
  SCORCH_CHECK(H5Dwrite(d.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) >= 0,
               "HDF5: cannot write string '{}': {}", name, last_error());
  SCORCH_CHECK(d.close() >= 0, "HDF5: cannot write string '{}' (disk full?): {}", name, last_error());
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

void write_checked_string(hid_t loc, const std::string& name, const std::string& s) {
  write_string(loc, name, s);
  Handle d = open_dataset(loc, name, "(being written)");
  set_attr(d.id(), "crc32", static_cast<int64_t>(crc32_of(s)));
}

std::string read_checked_string(hid_t loc, const std::string& name, const std::string& file, bool crc_required) {
  std::string s = read_string(loc, name, file);
  Handle d = open_dataset(loc, name, file);
  if (!has_attr(d.id(), "crc32")) {
    SCORCH_CHECK(!crc_required, "{}: /{} has no crc32 attribute, which files of this version always carry: the file is "
                 "corrupted", file, name);
    return s;
  }
  const int64_t want = get_attr_int(d.id(), "crc32", file), got = static_cast<int64_t>(crc32_of(s));
  SCORCH_CHECK(want == got, "{}: /{} fails its CRC-32 check (stored {:08x}, computed {:08x}): the file is corrupted",
               file, name, want, got);
  return s;
}

RowReader::RowReader(const std::string& path, const std::string& name, int64_t cache_bytes)
    : path_(path), name_(name), file_(File::open_read(path)) {
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  // 12421 slots (a prime, as HDF5 advises) and w0 = 1: fully read chunks go first.
  H5Pset_chunk_cache(dapl.id(), 12421, static_cast<size_t>(std::max<int64_t>(cache_bytes, 0)), 1.0);
  SCORCH_CHECK(exists(file_.id(), name), "{}: dataset '{}' is missing", path, name);
  dset_ = Handle(H5Dopen2(file_.id(), name.c_str(), dapl.id()), H5Dclose);
  SCORCH_CHECK(dset_.id() >= 0, "{}: cannot open dataset '{}': {}", path, name, last_error());
  space_ = Handle(H5Dget_space(dset_.id()), H5Sclose);
  const int nd = H5Sget_simple_extent_ndims(space_.id());
  SCORCH_CHECK(nd >= 1, "{}: dataset '{}' has no rows", path, name);
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space_.id(), dims.data(), nullptr);
  shape_.assign(dims.begin(), dims.end());
  int* fdp = nullptr;
  if (H5Fget_vfd_handle(file_.id(), H5P_DEFAULT, reinterpret_cast<void**>(&fdp)) >= 0 && fdp) fd_ = *fdp;
  struct stat st {};
  if (fd_ >= 0 && fstat(fd_, &st) == 0) size_at_open_ = static_cast<int64_t>(st.st_size);
}

RowReader::~RowReader() = default;

void RowReader::read(const std::vector<int64_t>& rows, torch::Tensor& out) {
  quiet_this_thread();
  SCORCH_CHECK(out.is_contiguous() && out.device().is_cpu() && out.dim() == static_cast<int64_t>(shape_.size()) &&
                   out.size(0) == static_cast<int64_t>(rows.size()),
               "{}: RowReader::read needs a contiguous CPU [{}, ...] tensor", path_, rows.size());
  if (rows.empty()) return;
  std::lock_guard<std::mutex> lk(mu_);
  // The file may have been truncated (or rewritten in place) since it was opened: past its
  // end the driver would hand back zeros, so check its size first.
  struct stat st {};
  if (fd_ >= 0) {
    SCORCH_CHECK(fstat(fd_, &st) == 0, "{}: cannot stat the open file: {}", path_, std::strerror(errno));
    SCORCH_CHECK(static_cast<int64_t>(st.st_size) >= size_at_open_,
                 "{}: the file shrank from {} to {} bytes while being streamed (truncated under the run?); rows {}..{} "
                 "of '{}' cannot be read",
                 path_, size_at_open_, static_cast<int64_t>(st.st_size), rows.front(), rows.back(), name_);
  }
  // One read per run of consecutive rows, each a plain hyperslab into its place in `out`:
  // HDF5 maps a union of many small hyperslabs onto chunks far more slowly than it serves
  // the same rows one simple selection at a time.
  std::vector<hsize_t> off(shape_.size(), 0), cnt(shape_.begin(), shape_.end());
  const hid_t mem_type = h5_type(out.scalar_type());
  const int64_t row_bytes = out.numel() / out.size(0) * static_cast<int64_t>(out.element_size());
  Handle sel(H5Scopy(space_.id()), H5Sclose);
  size_t i = 0;
  herr_t rc = 0;
  std::string why;  // taken at once: the next HDF5 call (even a close) clears the error stack
  while (i < rows.size() && rc >= 0) {
    size_t j = i + 1;
    while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;
    SCORCH_CHECK(rows[i] >= 0 && rows[j - 1] < shape_[0] && (i == 0 || rows[i] > rows[i - 1]),
                 "{}: rows to stream must be ascending, distinct and in [0, {}) (got {} after {})", path_, shape_[0],
                 rows[i], i ? rows[i - 1] : -1);
    off[0] = static_cast<hsize_t>(rows[i]);
    cnt[0] = static_cast<hsize_t>(j - i);
    H5Sselect_hyperslab(sel.id(), H5S_SELECT_SET, off.data(), nullptr, cnt.data(), nullptr);
    Handle mem(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), H5Sclose);
    rc = H5Dread(dset_.id(), mem_type, mem.id(), sel.id(), H5P_DEFAULT,
                 static_cast<char*>(out.data_ptr()) + static_cast<int64_t>(i) * row_bytes);
    if (rc < 0) {
      why = last_error();
      break;
    }
    i = j;
  }
  SCORCH_CHECK(rc >= 0, "{}: reading {} rows of '{}' between row {} and row {} failed (a corrupted chunk or a damaged "
               "file): {}", path_, rows.size(), name_, rows.front(), rows.back(), why);
}

}  // namespace scorch::h5
