// HDF5 C API behind RAII handles: files, groups, attributes, listing, whole-file
// verification and atomic writes; every failure becomes a scorch::Error naming the file, the
// object and the innermost HDF5 message (e.g. a Fletcher-32 checksum failure). Datasets
// (tensors, rows, strings) are in io/hdf5_data.cpp.
#include "scorch/io/hdf5.h"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "hdf5_detail.h"
#include "scorch/core/error.h"
#include "scorch/io/files.h"

namespace scorch::h5 {

namespace detail {

void quiet_this_thread() {
  thread_local bool done = false;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    done = true;
  }
}

}  // namespace detail

namespace {

using detail::quiet_this_thread;

struct Quiet {
  Quiet() {
    // No library shutdown at exit: after a write failed (disk full) HDF5 cannot close that
    // file, and its exit handler would crash on it. Every file scorch opens is closed
    // explicitly, so there is nothing left for the handler to flush.
    H5dont_atexit();
    quiet_this_thread();
  }
};
const Quiet quiet_hdf5_errors;

herr_t walk_cb(unsigned n, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && e->desc) *out = e->desc;  // innermost frame
  return 0;
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

void Handle::reset() { (void)close(); }

herr_t Handle::close() {
  herr_t rc = 0;
  if (id_ >= 0 && closer_) rc = closer_(id_);
  id_ = H5I_INVALID_HID;
  return rc;
}

void File::close() {
  if (h_.id() < 0) return;
  const bool ok_flush = H5Fflush(h_.id(), H5F_SCOPE_LOCAL) >= 0;
  std::string flush_err = ok_flush ? "" : last_error();
  const bool ok_close = h_.close() >= 0;
  SCORCH_CHECK(ok_flush && ok_close, "cannot write '{}' (flush/close failed: disk full or I/O error?): {}", path_,
               ok_flush ? last_error() : flush_err);
}

std::string last_error() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &msg);
  if (msg.empty()) return "unknown HDF5 error";
  // A failed system call: HDF5's long description holds the errno and its text.
  auto em = msg.find("error message = '"), en = msg.find("errno = ");
  if (em != std::string::npos && en != std::string::npos) {
    auto end = msg.find('\'', em + 17);
    return fmt::format("{} (errno {})", msg.substr(em + 17, end - em - 17), std::atoi(msg.c_str() + en + 8));
  }
  return msg;
}

File File::create(const std::string& path) {
  quiet_this_thread();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  H5Pset_obj_track_times(fcpl.id(), 0);
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id());
  SCORCH_CHECK(f >= 0, "cannot create HDF5 file '{}': {}", path, last_error());
  File out;
  out.h_ = Handle(f, H5Fclose);
  out.path_ = path;
  return out;
}

File File::open_read(const std::string& path) {
  quiet_this_thread();
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

bool is_hdf5(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char sig[8] = {};
  in.read(sig, 8);
  return in.gcount() == 8 && std::string(sig, 8) == std::string("\x89HDF\r\n\x1a\n", 8);
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

void set_attr(hid_t loc, const std::string& name, int64_t v) { write_attr(loc, name, H5T_NATIVE_INT64, &v); }
void set_attr(hid_t loc, const std::string& name, double v) { write_attr(loc, name, H5T_NATIVE_DOUBLE, &v); }
void set_attr(hid_t loc, const std::string& name, const std::string& v) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id(), H5T_VARIABLE);
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  const char* p = v.c_str();
  write_attr(loc, name, type.id(), &p);
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
  SCORCH_CHECK(H5Tget_class(type.id()) == H5T_STRING, "{}: attribute '{}' is not a string", file, name);
  if (H5Tis_variable_str(type.id()) > 0) {
    Handle space(H5Aget_space(a.id()), H5Sclose);
    SCORCH_CHECK(H5Sget_simple_extent_npoints(space.id()) == 1, "{}: attribute '{}' is not one string", file, name);
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.id(), H5T_VARIABLE);
    H5Tset_cset(mem.id(), H5Tget_cset(type.id()));
    char* p = nullptr;
    SCORCH_CHECK(H5Aread(a.id(), mem.id(), &p) >= 0, "{}: cannot read attribute '{}'", file, name);
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  std::string s(H5Tget_size(type.id()), '\0');
  SCORCH_CHECK(H5Aread(a.id(), type.id(), s.data()) >= 0, "{}: cannot read attribute '{}'", file, name);
  s.resize(std::strlen(s.c_str()));
  return s;
}

namespace {

struct VisitState {
  std::string file;
  std::string error;
};

herr_t verify_link(hid_t group, const char* name, const H5L_info_t*, void* data) {
  auto* st = static_cast<VisitState*>(data);
  hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
  if (obj < 0) {
    st->error = fmt::format("{}: cannot open '{}': {}", st->file, name, last_error());
    return -1;
  }
  Handle o(obj, H5Oclose);
  if (H5Iget_type(obj) != H5I_DATASET) return 0;
  Handle space(H5Dget_space(obj), H5Sclose);
  Handle ftype(H5Dget_type(obj), H5Tclose);
  Handle mtype(H5Tget_native_type(ftype.id(), H5T_DIR_ASCEND), H5Tclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.id());
  const size_t size = H5Tget_size(mtype.id());
  if (n < 0 || size == 0) {
    st->error = fmt::format("{}: dataset '{}' has an unreadable shape or type", st->file, name);
    return -1;
  }
  std::vector<char> buf(static_cast<size_t>(std::max<hssize_t>(n, 1)) * size);
  if (n > 0 && H5Dread(obj, mtype.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) {
    st->error = fmt::format("{}: dataset '{}' does not read back (truncated or corrupted): {}", st->file, name,
                            last_error());
    return -1;
  }
  return 0;
}

}  // namespace

void verify_file(const std::string& path) {
  auto f = File::open_read(path);
  VisitState st{path, ""};
  herr_t rc = H5Lvisit(f.id(), H5_INDEX_NAME, H5_ITER_INC, verify_link, &st);
  SCORCH_CHECK(rc >= 0 && st.error.empty(), "{}", st.error.empty() ? fmt::format("{}: cannot walk the file: {}", path, last_error()) : st.error);
  f.close();
}

void write_atomically(const std::string& path, const std::function<void(hid_t)>& fill) {
  io::write_file_atomically(
      path,
      [&](const std::string& tmp) {
        auto f = File::create(tmp);
        fill(f.id());
        f.close();
      },
      [&](const std::string& tmp) { verify_file(tmp); });
}

}  // namespace scorch::h5
