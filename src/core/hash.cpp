// CRC-32, FNV-1a and SHA-256 (see core/hash.h).
#include "scorch/core/hash.h"

#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "scorch/core/error.h"

namespace scorch {

uint32_t crc32_of(const std::string& s) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  for (size_t off = 0; off < s.size();) {  // uInt lengths: pieces of at most 1 GiB
    const size_t n = std::min<size_t>(s.size() - off, size_t{1} << 30);
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(s.data() + off), static_cast<uInt>(n));
    off += n;
  }
  return static_cast<uint32_t>(crc);
}

uint64_t fnv1a64(const char* data, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 1099511628211ULL;
  return h;
}

std::string fnv1a64_hex(const std::string& s) { return fmt::format("{:016x}", fnv1a64(s.data(), s.size())); }

std::string file_fnv1a64_hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCORCH_CHECK(in, "{}: cannot read ({})", path, std::strerror(errno));
  uint64_t h = kFnv1aOffset;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) h = fnv1a64(buf, static_cast<size_t>(in.gcount()), h);
  SCORCH_CHECK(in.eof(), "{}: read error ({})", path, std::strerror(errno));
  return fmt::format("{:016x}", h);
}

std::string file_sha256_hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCORCH_CHECK(in, "{}: cannot read ({})", path, std::strerror(errno));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  SCORCH_CHECK(ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1, "SHA-256: OpenSSL refused to start");
  std::vector<char> buf(size_t{1} << 20);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    SCORCH_CHECK(EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount())) == 1, "SHA-256 of {} failed",
                 path);
  }
  SCORCH_CHECK(in.eof(), "{}: read error ({})", path, std::strerror(errno));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SCORCH_CHECK(EVP_DigestFinal_ex(ctx.get(), md, &len) == 1 && len == 32, "SHA-256 of {} failed", path);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

}  // namespace scorch
