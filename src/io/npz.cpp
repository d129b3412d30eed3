// .npy / .npz reading and writing (see io/npz.h). ZIP layout: PKWARE APPNOTE 6.3 (local file
// headers, central directory, end record; no ZIP64: members and archives under 4 GiB).
#include "scorch/io/npz.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/memory.h"
#include "scorch/io/files.h"

namespace scorch::io {

namespace {

void put16(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}
uint32_t get16(const std::string& s, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(s[at])) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 8);
}
uint32_t get32(const std::string& s, size_t at) { return get16(s, at) | (get16(s, at + 2) << 16); }

const char* descr_of(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat64: return "<f8";
    case torch::kFloat32: return "<f4";
    case torch::kInt64: return "<i8";
    case torch::kInt32: return "<i4";
    default: SCORCH_THROW("npy: unsupported dtype {}", c10::toString(t));
  }
}

}  // namespace

std::string npy_bytes(const torch::Tensor& t_in) {
  auto t = t_in.cpu().contiguous();
  std::string shape;
  for (auto d : t.sizes()) shape += std::to_string(d) + ", ";
  if (t.dim() == 1) shape.resize(shape.size() - 1);  // "(3,)"
  else if (t.dim() > 1) shape.resize(shape.size() - 2);
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr_of(t.scalar_type()), shape);
  // Magic (6) + version (2) + length (2) + header + '\n', padded with spaces to 64 bytes.
  const size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  put16(out, static_cast<uint32_t>(header.size()));
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * t.element_size());
  return out;
}

namespace {

// A .npy header (from the first bytes of `b`): dtype, shape, order, where the data start and
// how many bytes the header claims for them (checked arithmetic).
struct NpyHeader {
  torch::ScalarType type = torch::kFloat64;
  std::vector<int64_t> shape;
  bool fortran = false;
  size_t data = 0, bytes = 0;
};

NpyHeader parse_npy_header(const std::string& b, const std::string& what) {
  SCORCH_CHECK(b.size() >= 10 && b.compare(0, 6, "\x93NUMPY") == 0, "{}: not a .npy array (bad magic)", what);
  const int major = static_cast<unsigned char>(b[6]);
  size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = get16(b, 8);
    start = 10;
  } else {
    SCORCH_CHECK(major == 2 || major == 3, "{}: .npy format version {} is not supported", what, major);
    SCORCH_CHECK(b.size() >= 12, "{}: truncated .npy header", what);
    hlen = get32(b, 8);
    start = 12;
  }
  SCORCH_CHECK(b.size() >= start + hlen, "{}: truncated .npy header", what);
  const std::string h = b.substr(start, hlen);
  std::smatch m;
  SCORCH_CHECK(std::regex_search(h, m, std::regex(R"('descr'\s*:\s*'([^']+)')")), "{}: .npy header without descr: {}",
               what, h);
  const std::string descr = m[1];
  SCORCH_CHECK(std::regex_search(h, m, std::regex(R"('fortran_order'\s*:\s*(True|False))")),
               "{}: .npy header without fortran_order: {}", what, h);
  const bool fortran = m[1] == "True";
  SCORCH_CHECK(std::regex_search(h, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))")), "{}: .npy header without shape: {}",
               what, h);
  std::vector<int64_t> shape;
  std::string dims = m[1];
  std::regex num(R"(-?\d+)");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it) {
    const std::string d = it->str();
    SCORCH_CHECK(d[0] != '-', "{}: .npy header claims a negative dimension {} in shape ({})", what, d, dims);
    int64_t v = 0;
    try {
      v = std::stoll(d);
    } catch (const std::exception&) {
      SCORCH_THROW("{}: .npy header claims dimension {} in shape ({}): beyond a 64-bit size", what, d, dims);
    }
    shape.push_back(v);
  }
  torch::ScalarType type;
  if (descr == "<f8") type = torch::kFloat64;
  else if (descr == "<f4") type = torch::kFloat32;
  else if (descr == "<i8") type = torch::kInt64;
  else if (descr == "<i4") type = torch::kInt32;
  else SCORCH_THROW("{}: dtype '{}' is not supported (little-endian f8, f4, i8, i4 are)", what, descr);
  // The claimed size in checked arithmetic (a wrapped product once matched an empty payload).
  int64_t n = 1;
  for (auto d : shape) {
    SCORCH_CHECK(!__builtin_mul_overflow(n, d, &n), "{}: .npy header claims shape ({}): its size overflows 64 bits",
                 what, dims);
  }
  int64_t claimed = 0;
  SCORCH_CHECK(!__builtin_mul_overflow(n, static_cast<int64_t>(c10::elementSize(type)), &claimed),
               "{}: .npy header claims shape ({}) of {}: its size overflows 64 bits", what, dims, descr);
  const size_t bytes = static_cast<size_t>(claimed);
  return NpyHeader{type, shape, fortran, start + hlen, bytes};
}

}  // namespace

size_t npy_payload_size(const std::string& head, const std::string& what) {
  const auto h = parse_npy_header(head, what);
  SCORCH_CHECK(h.data <= SIZE_MAX - h.bytes, "{}: .npy header claims more bytes than any file", what);
  return h.data + h.bytes;
}

torch::Tensor parse_npy(const std::string& b, const std::string& what) {
  const auto h = parse_npy_header(b, what);
  const auto& shape = h.shape;
  const bool fortran = h.fortran;
  const auto type = h.type;
  const size_t data = h.data, bytes = h.bytes;
  SCORCH_CHECK(b.size() - data == bytes, "{}: .npy holds {} data bytes, its header (shape {}, {}) says {}", what,
               b.size() - data, c10::str(shape), c10::toString(type), bytes);
  std::vector<int64_t> as_stored(shape);
  if (fortran) std::reverse(as_stored.begin(), as_stored.end());
  auto t = torch::empty(as_stored, torch::TensorOptions().dtype(type));
  std::memcpy(t.data_ptr(), b.data() + data, bytes);
  if (fortran && t.dim() > 1) {
    std::vector<int64_t> perm;
    for (int64_t i = t.dim() - 1; i >= 0; --i) perm.push_back(i);
    t = t.permute(perm).contiguous();
  }
  return t;
}

void write_npz(const std::string& path, const std::map<std::string, torch::Tensor>& arrays) {
  std::string zip, central;
  uint32_t count = 0;
  for (const auto& [key, t] : arrays) {
    const std::string name = key + ".npy";
    const std::string payload = npy_bytes(t);
    SCORCH_CHECK(payload.size() < 0xffffffffull && zip.size() + payload.size() < 0xffffffffull,
                 "{}: '{}' makes the archive 4 GiB or more (ZIP64 is not written)", path, key);
    const uint32_t crc = crc32_of(payload), size = static_cast<uint32_t>(payload.size());
    const uint32_t offset = static_cast<uint32_t>(zip.size());
    // Local file header: version 2.0, no flags, stored, no time (1980-01-01), sizes.
    put32(zip, 0x04034b50); put16(zip, 20); put16(zip, 0); put16(zip, 0); put16(zip, 0); put16(zip, 0x21);
    put32(zip, crc); put32(zip, size); put32(zip, size); put16(zip, static_cast<uint32_t>(name.size())); put16(zip, 0);
    zip += name;
    zip += payload;
    put32(central, 0x02014b50); put16(central, 20); put16(central, 20); put16(central, 0); put16(central, 0);
    put16(central, 0); put16(central, 0x21); put32(central, crc); put32(central, size); put32(central, size);
    put16(central, static_cast<uint32_t>(name.size())); put16(central, 0); put16(central, 0); put16(central, 0);
    put16(central, 0); put32(central, 0); put32(central, offset);
    central += name;
    ++count;
  }
  const uint32_t cd_offset = static_cast<uint32_t>(zip.size());
  zip += central;
  put32(zip, 0x06054b50); put16(zip, 0); put16(zip, 0); put16(zip, count); put16(zip, count);
  put32(zip, static_cast<uint32_t>(central.size())); put32(zip, cd_offset); put16(zip, 0);
  write_file_atomically(path, [&](const std::string& tmp) { write_bytes(tmp, zip.data(), zip.size()); },
                        [&](const std::string& tmp) {
                          auto back = read_npz(tmp);
                          SCORCH_CHECK(back.size() == arrays.size(), "{}: read back {} arrays, wrote {}", tmp,
                                       back.size(), arrays.size());
                        });
}

std::map<std::string, torch::Tensor> read_npz(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCORCH_CHECK(in, "{}: cannot open ({})", path, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string z = ss.str();
  // The end-of-central-directory record: the last 22 bytes, or earlier if there is a comment.
  SCORCH_CHECK(z.size() >= 22, "{}: not an .npz (ZIP) file: {} bytes", path, z.size());
  size_t eocd = std::string::npos;
  for (size_t i = z.size() - 22 + 1; i-- > 0 && z.size() - i <= 22 + 65535;) {
    if (get32(z, i) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  SCORCH_CHECK(eocd != std::string::npos, "{}: not an .npz (ZIP) file: no end-of-central-directory record", path);
  const uint32_t entries = get16(z, eocd + 10), cd_off = get32(z, eocd + 16);
  SCORCH_CHECK(cd_off != 0xffffffffu, "{}: ZIP64 archives are not supported", path);
  std::map<std::string, torch::Tensor> out;
  size_t p = cd_off;
  for (uint32_t e = 0; e < entries; ++e) {
    SCORCH_CHECK(p + 46 <= z.size() && get32(z, p) == 0x02014b50, "{}: corrupt ZIP central directory (entry {})", path, e);
    const uint32_t method = get16(z, p + 10), crc = get32(z, p + 16), csize = get32(z, p + 20), usize = get32(z, p + 24);
    const uint32_t nlen = get16(z, p + 28), xlen = get16(z, p + 30), clen = get16(z, p + 32), lho = get32(z, p + 42);
    const std::string name = z.substr(p + 46, nlen);
    p += 46 + nlen + xlen + clen;
    SCORCH_CHECK(lho + 30 <= z.size() && get32(z, lho) == 0x04034b50, "{}: corrupt ZIP local header of '{}'", path, name);
    const size_t data = lho + 30 + get16(z, lho + 26) + get16(z, lho + 28);
    SCORCH_CHECK(data + csize <= z.size(), "{}: '{}' is truncated", path, name);
    std::string payload;
    if (method == 0) {
      payload = z.substr(data, csize);
    } else {
      SCORCH_CHECK(method == 8, "{}: '{}' uses ZIP method {} (stored and deflate are read)", path, name, method);
      // Before inflating it all: its .npy header (in the first bytes) must claim exactly what the
      // ZIP entry claims, and that must fit in memory (a few MB of deflated zeros can claim GBs).
      {
        std::string head(std::min<size_t>(usize, 1 << 16), '\0');
        z_stream h{};
        h.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data() + data));
        h.avail_in = csize;
        h.next_out = reinterpret_cast<Bytef*>(head.data());
        h.avail_out = static_cast<uInt>(head.size());
        SCORCH_CHECK(inflateInit2(&h, -MAX_WBITS) == Z_OK, "{}: zlib inflateInit failed", path);
        const int rc = inflate(&h, Z_SYNC_FLUSH);
        inflateEnd(&h);
        SCORCH_CHECK(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR, "{}: '{}' does not inflate (zlib code {})",
                     path, name, rc);
        head.resize(h.total_out);
        const size_t claimed = npy_payload_size(head, path + ":" + name);
        SCORCH_CHECK(claimed == usize, "{}: '{}' claims {} bytes uncompressed (from {} compressed), but its .npy header "
                     "says {}: a damaged or forged archive", path, name, usize, csize, claimed);
        const double avail = available_memory();
        SCORCH_CHECK(avail <= 0 || static_cast<double>(usize) <= 0.8 * avail,
                     "{}: '{}' inflates to {} bytes (from {} compressed), more than this machine's available memory "
                     "({:.0f} bytes): refused before inflating", path, name, usize, csize, avail);
      }
      payload.resize(usize);
      z_stream s{};
      s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data() + data));
      s.avail_in = csize;
      s.next_out = reinterpret_cast<Bytef*>(payload.data());
      s.avail_out = usize;
      SCORCH_CHECK(inflateInit2(&s, -MAX_WBITS) == Z_OK, "{}: zlib inflateInit failed", path);
      const int rc = inflate(&s, Z_FINISH);
      inflateEnd(&s);
      SCORCH_CHECK(rc == Z_STREAM_END && s.total_out == usize, "{}: '{}' does not inflate (zlib code {})", path, name, rc);
    }
    SCORCH_CHECK(crc32_of(payload) == crc, "{}: '{}' fails its CRC-32 (corrupt file)", path, name);
    std::string key = name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0 ? name.substr(0, name.size() - 4) : name;
    out[key] = parse_npy(payload, path + ":" + name);
  }
  return out;
}

}  // namespace scorch::io
