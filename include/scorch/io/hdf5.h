// Small RAII wrappers over the HDF5 C API and tensor <-> dataset conversion. Datasets are
// chunked with Fletcher-32 checksums and files use the v1.10 format (checksummed metadata),
// so a corrupted file fails loudly on read instead of yielding garbage. h5py reads them all.
#pragma once
#include <hdf5.h>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace scorch::h5 {

// Owns one hid_t and closes it with the matching H5?close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  void reset();  // closes, ignoring the result (destructors, error paths)
  // Closes and returns the close call's status: closing a dataset or a file flushes
  // cached chunks and metadata, which is where a full disk shows up.
  herr_t close();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

class File {
 public:
  static File create(const std::string& path);  // truncates
  static File open_read(const std::string& path);
  hid_t id() const { return h_.id(); }
  const std::string& path() const { return path_; }
  // Flushes and closes; throws naming the file if either fails (e.g. ENOSPC).
  void close();

 private:
  Handle h_;
  std::string path_;
};

// The innermost message of the current HDF5 error stack ("" if none).
std::string last_error();

bool exists(hid_t loc, const std::string& name);
// Whether the file at `path` starts with the HDF5 signature (false if unreadable).
bool is_hdf5(const std::string& path);  // a/b/c paths allowed
std::vector<std::string> list(hid_t loc, const std::string& group);  // child names, sorted
// Dataset shape, e.g. {60000, 28, 28, 1}.
std::vector<int64_t> shape(hid_t loc, const std::string& name);

// Checks that dataset `name` really holds the data its shape claims, before anything is
// read: every chunk of a chunked dataset written (unwritten chunks read as fill values),
// a contiguous one stored in full, and a virtual one's source files present. Throws naming
// `file`, the dataset and what is missing.
void check_stored(hid_t loc, const std::string& name, const std::string& file);
// Bytes one element of dataset `name` takes in memory.
size_t element_size(hid_t loc, const std::string& name);
// The tensor dtype dataset `name` is stored as; throws naming `file` for a type scorch does not read.
torch::ScalarType stored_dtype(hid_t loc, const std::string& name, const std::string& file);
// The stored element type in words ("int8 (signed 8-bit integers)"), for messages.
std::string stored_type_words(hid_t loc, const std::string& name, const std::string& file);

// Writes a contiguous CPU tensor (uint8, int64, float32, float64) at `name`, creating
// intermediate groups. Row chunks of at most `chunk_bytes` (at least one row), each
// Fletcher-32 checksummed.
constexpr int64_t kDefaultChunkBytes = int64_t(1) << 20;
void write_tensor(hid_t loc, const std::string& name, const torch::Tensor& t, int64_t chunk_bytes = kDefaultChunkBytes);
// Reads a dataset into a tensor of the stored type; `file` names the file in errors.
torch::Tensor read_tensor(hid_t loc, const std::string& name, const std::string& file);
// Every tensor of `m` as <group>/<name> (the group created even when `m` is empty), and back.
void write_tensors(hid_t loc, const std::string& group, const std::map<std::string, torch::Tensor>& m);
std::map<std::string, torch::Tensor> read_tensors(hid_t loc, const std::string& group, const std::string& file);
// Reads rows [start, start+count) along axis 0.
torch::Tensor read_rows(hid_t loc, const std::string& name, int64_t start, int64_t count, const std::string& file);
// Group `name` and its missing parents, without timestamps (no-op where it exists).
void create_group(hid_t loc, const std::string& name);
// An empty dataset of `shape` (row chunks, Fletcher-32, like write_tensor) that write_rows
// then fills piece by piece, so that a large result never has to be in memory at once.
void create_dataset(hid_t loc, const std::string& name, torch::ScalarType dtype, const std::vector<int64_t>& shape,
                    int64_t chunk_bytes = kDefaultChunkBytes);
// Rows per chunk of a dataset (its first chunk dimension; 0 when it is not chunked).
int64_t chunk_rows(hid_t loc, const std::string& name);
// Writes `rows` [count, ...] at rows [start, start + count) of dataset `name`.
void write_rows(hid_t loc, const std::string& name, int64_t start, const torch::Tensor& rows);

void write_string(hid_t loc, const std::string& name, const std::string& s);
std::string read_string(hid_t loc, const std::string& name, const std::string& file);
// A string dataset with its CRC-32 (zlib's) in the attribute "crc32": HDF5 checksums chunked
// datasets only, and a string is one contiguous value (the /config of checkpoints and EMA
// snapshots). The reader verifies it and throws naming the file and both sums; a dataset
// without the attribute is read unchecked unless `crc_required`.
void write_checked_string(hid_t loc, const std::string& name, const std::string& s);
std::string read_checked_string(hid_t loc, const std::string& name, const std::string& file, bool crc_required);

void set_attr(hid_t loc, const std::string& name, int64_t v);
void set_attr(hid_t loc, const std::string& name, double v);
// Strings are variable-length UTF-8 (h5py reads them as str); readers also accept the
// fixed-length ASCII attributes of files written before.
void set_attr(hid_t loc, const std::string& name, const std::string& v);
int64_t get_attr_int(hid_t loc, const std::string& name, const std::string& file);
double get_attr_double(hid_t loc, const std::string& name, const std::string& file);
std::string get_attr_string(hid_t loc, const std::string& name, const std::string& file);
bool has_attr(hid_t loc, const std::string& name);

// Reads arbitrary rows of one dataset of a file kept open, for streaming: the dataset's
// chunk cache holds `cache_bytes`, rows of one call are read with one selection (runs of
// consecutive rows as hyperslabs), and every call first checks that the file has not been
// truncated under it (the sec2 driver would return zeros past its end). Thread-safe (the
// HDF5 library is built thread-safe; calls on one reader are serialised).
class RowReader {
 public:
  RowReader(const std::string& path, const std::string& name, int64_t cache_bytes);
  ~RowReader();
  RowReader(const RowReader&) = delete;
  RowReader& operator=(const RowReader&) = delete;
  const std::vector<int64_t>& shape() const { return shape_; }
  // Reads rows `rows` (ascending, distinct, in [0, N)) into `out` (contiguous CPU
  // [rows.size(), ...item], converting to out's dtype). Throws naming the file and the rows
  // on a checksum failure, a short read or a truncated file.
  void read(const std::vector<int64_t>& rows, torch::Tensor& out);

 private:
  std::string path_, name_;
  File file_;
  Handle dset_, space_;
  std::vector<int64_t> shape_;
  int fd_ = -1;
  int64_t size_at_open_ = 0;
  std::mutex mu_;
};

// Reads every dataset of `path` back (checksums verified); throws naming the file and the
// dataset on truncation or corruption.
void verify_file(const std::string& path);

// Creates a unique temporary beside `path` exclusively (io/files.h), lets `fill` write into
// it, closes it checking every flush (a full disk fails there), reads it all back
// (verify_file), then commits it to `path`. If anything fails, only this call's temporary
// is removed and `path` is untouched. Files are byte-for-byte reproducible: no object
// timestamps are stored.
void write_atomically(const std::string& path, const std::function<void(hid_t file)>& fill);

}  // namespace scorch::h5
