// IDX decoding through zlib's gz* API, which reads plain and gzip'd files alike and
// reports a truncated gzip stream as an error instead of a short read.
#include "scorch/data/idx.h"

#include <zlib.h>

#include <filesystem>
#include <memory>

#include "scorch/core/error.h"

namespace scorch::data {

namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

void read_exact(gzFile f, void* dst, size_t n, const std::string& path, const std::string& what) {
  size_t got = 0;
  auto* p = static_cast<unsigned char*>(dst);
  while (got < n) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    int r = gzread(f, p + got, chunk);
    if (r < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      SCORCH_THROW("{}: corrupted or truncated file while reading {}: {}", path, what, msg);
    }
    if (r == 0) {
      SCORCH_THROW("{}: truncated file: {} needs {} bytes, only {} present", path, what, n, got);
    }
    got += static_cast<size_t>(r);
  }
}

uint32_t be32(const unsigned char* b) {
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}

}  // namespace

IdxArray read_idx(const std::string& path, uint32_t expected_magic) {
  SCORCH_CHECK(std::filesystem::exists(path), "IDX file '{}' does not exist", path);
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  SCORCH_CHECK(f, "cannot open IDX file '{}'", path);
  unsigned char head[4];
  read_exact(f.get(), head, 4, path, "the magic number");
  uint32_t magic = be32(head);
  SCORCH_CHECK(magic == expected_magic, "{}: wrong magic number 0x{:08x}, expected 0x{:08x} ({})", path, magic,
               expected_magic, expected_magic == 0x803 ? "IDX images" : "IDX labels");
  uint32_t ndim = magic & 0xff;
  IdxArray out;
  int64_t total = 1;
  for (uint32_t i = 0; i < ndim; ++i) {
    read_exact(f.get(), head, 4, path, "the header");
    out.dims.push_back(be32(head));
    total *= out.dims.back();
  }
  SCORCH_CHECK(total > 0 && total < (int64_t(1) << 34), "{}: implausible dimensions in the header", path);
  out.bytes.resize(static_cast<size_t>(total));
  read_exact(f.get(), out.bytes.data(), out.bytes.size(), path, fmt::format("{} data bytes", total));
  unsigned char extra;
  int r = gzread(f.get(), &extra, 1);
  SCORCH_CHECK(r == 0, "{}: trailing bytes after the {} values its header declares", path, total);
  return out;
}

}  // namespace scorch::data
