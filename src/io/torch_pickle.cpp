// A small pickle virtual machine for the objects torch.save writes for state dicts:
// containers, numbers, strings, and tensors (GLOBAL torch._utils._rebuild_tensor_v2 with a
// persistent-id storage that lives in the zip's data/<key> record).
//
// Files are untrusted input, so the machine bounds what it builds: containers nest at most
// kMaxDepth deep (a 2,000,000-deep list would otherwise overflow the stack when it is
// destroyed or walked), a container is not modified once it sits inside another (Python's
// pickler finishes each child before its parent takes it, so only hand-made or cyclic
// pickles do this, and refusing it keeps the depth count exact and the graph acyclic), a
// storage's claimed size must equal its archive record's, and a tensor's shape, strides and
// offset must lie inside its storage; each refusal names the file and the nearest key.
// Before any record is read, the archive's central directory is checked: torch.save stores
// every member uncompressed, so a compressed member (a few MB of deflated zeros can claim
// GBs) is refused naming it, before anything is inflated.
// Writing (save_torch_file) goes through LibTorch's own Pickler.
#include "scorch/io/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <unordered_map>

#include "scorch/core/error.h"
#include "scorch/io/files.h"

namespace scorch::io {

namespace {

c10::ScalarType storage_dtype(const std::string& global, const std::string& path) {
  static const std::map<std::string, c10::ScalarType> kTypes = {
      {"torch.FloatStorage", c10::kFloat},   {"torch.DoubleStorage", c10::kDouble}, {"torch.HalfStorage", c10::kHalf},
      {"torch.BFloat16Storage", c10::kBFloat16}, {"torch.LongStorage", c10::kLong}, {"torch.IntStorage", c10::kInt},
      {"torch.ShortStorage", c10::kShort},   {"torch.CharStorage", c10::kChar},     {"torch.ByteStorage", c10::kByte},
      {"torch.BoolStorage", c10::kBool}};
  auto it = kTypes.find(global);
  SCORCH_CHECK(it != kTypes.end(), "{}: unsupported storage type {}", path, global);
  return it->second;
}

struct Global {
  std::string name;  // "module.qualname"
};

// Deeper than Python's default recursion limit lets torch.save write; far deeper than any
// state dict (score_sde_pytorch's checkpoints nest 5 deep).
constexpr int kMaxDepth = 1000;

bool is_container(const c10::IValue& v) { return v.isList() || v.isGenericDict() || v.isTuple(); }

std::string join(const std::vector<int64_t>& v) { return fmt::format("[{}]", fmt::join(v, ", ")); }

class Unpickler {
 public:
  Unpickler(const std::string& path, caffe2::serialize::PyTorchStreamReader& zip, const std::string& prefix)
      : path_(path), zip_(zip), prefix_(prefix) {}

  c10::IValue run(const uint8_t* data, size_t size) {
    p_ = begin_ = data;
    end_ = data + size;
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;             // PROTO
        case 0x95: le<uint64_t>(); break;     // FRAME (protocol 4): a length hint
        case 0x94: memo_[static_cast<uint32_t>(memo_.size())] = stack_.back(); break;  // MEMOIZE
        case '.': return pop();    // STOP
        case '(': marks_.push_back(stack_.size()); break;
        case '0': pop(); break;
        case '1': stack_.resize(pop_mark()); break;
        case '}': stack_.emplace_back(new_dict()); break;
        case ']': stack_.emplace_back(c10::impl::GenericList(c10::AnyType::get())); break;
        case ')': stack_.emplace_back(c10::ivalue::Tuple::create({})); break;
        case 'N': stack_.emplace_back(); break;
        case 0x88: stack_.emplace_back(true); break;
        case 0x89: stack_.emplace_back(false); break;
        case 'K': stack_.emplace_back(static_cast<int64_t>(byte())); break;
        case 'M': stack_.emplace_back(static_cast<int64_t>(le<uint16_t>())); break;
        case 'J': stack_.emplace_back(static_cast<int64_t>(le<int32_t>())); break;
        case 0x8a: {  // LONG1: little-endian two's complement
          const uint8_t n = byte();
          SCORCH_CHECK(n <= 8, "{}: integer of {} bytes does not fit 64 bits", path_, n);
          int64_t v = 0;
          for (uint8_t i = 0; i < n; ++i) v |= static_cast<int64_t>(byte()) << (8 * i);
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v -= int64_t{1} << (8 * n);
          stack_.emplace_back(v);
          break;
        }
        case 'G': {  // BINFLOAT: big-endian double
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | byte();
          double d;
          std::memcpy(&d, &bits, 8);
          stack_.emplace_back(d);
          break;
        }
        case 'X': stack_.emplace_back(str(le<uint32_t>())); break;  // BINUNICODE
        case 0x8c: stack_.emplace_back(str(byte())); break;        // SHORT_BINUNICODE
        case 'T': stack_.emplace_back(str(le<uint32_t>())); break;  // BINSTRING
        case 'U': stack_.emplace_back(str(byte())); break;         // SHORT_BINSTRING
        case 'q': memo_[byte()] = stack_.back(); break;
        case 'r': memo_[le<uint32_t>()] = stack_.back(); break;
        case 'h': stack_.push_back(memo(byte())); break;
        case 'j': stack_.push_back(memo(le<uint32_t>())); break;
        case 0x85: tuple(1); break;
        case 0x86: tuple(2); break;
        case 0x87: tuple(3); break;
        case 't': tuple(stack_.size() - pop_mark()); break;
        case 'l': {  // LIST: the items above the mark, in a new list in the mark's place
          const size_t m = pop_mark();
          stack_.insert(stack_.begin() + static_cast<std::ptrdiff_t>(m), c10::impl::GenericList(c10::AnyType::get()));
          append_from(m, m + 1);
          break;
        }
        case 'd': {  // DICT
          const size_t m = pop_mark();
          stack_.insert(stack_.begin() + static_cast<std::ptrdiff_t>(m), new_dict());
          set_items_from(m, m + 1);
          break;
        }
        case 'a': {  // APPEND
          auto v = pop();
          append(stack_.size() - 1, v);
          break;
        }
        case 'e': {  // APPENDS
          const size_t m = pop_mark();
          append_from(m - 1, m);
          break;
        }
        case 's': {  // SETITEM
          auto v = pop();
          auto k = pop();
          set_item(stack_.size() - 1, k, v);
          break;
        }
        case 'u': {  // SETITEMS
          const size_t m = pop_mark();
          set_items_from(m - 1, m);
          break;
        }
        case 'c': {  // GLOBAL module\nname\n
          std::string mod = line(), name = line();
          globals_.push_back(Global{mod + "." + name});
          stack_.emplace_back(fmt::format("\x01global:{}", globals_.size() - 1));
          break;
        }
        case 0x93: {  // STACK_GLOBAL (protocol 4)
          auto name = pop(), mod = pop();
          SCORCH_CHECK(name.isString() && mod.isString(), "{}: malformed pickle (STACK_GLOBAL)", path_);
          globals_.push_back(Global{mod.toStringRef() + "." + name.toStringRef()});
          stack_.emplace_back(fmt::format("\x01global:{}", globals_.size() - 1));
          break;
        }
        case 'R':     // REDUCE
        case 0x81: {  // NEWOBJ
          auto args = pop();
          auto fn = pop();
          stack_.push_back(call(global_name(fn), args));
          break;
        }
        case 'b': pop(); break;  // BUILD: attributes (e.g. a state_dict's _metadata) are not needed
        case 'Q': stack_.push_back(persistent(pop())); break;
        default:
          SCORCH_THROW("{}: unsupported pickle opcode 0x{:02x} at byte {}", path_, op, p_ - 1 - begin_);
      }
    }
  }

 private:
  uint8_t byte() {
    SCORCH_CHECK(p_ < end_, "{}: pickle ends early (truncated file?)", path_);
    return *p_++;
  }
  template <class T>
  T le() {
    SCORCH_CHECK(p_ + sizeof(T) <= end_, "{}: pickle ends early (truncated file?)", path_);
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  std::string str(size_t n) {
    SCORCH_CHECK(p_ + n <= end_, "{}: pickle ends early (truncated file?)", path_);
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  std::string line() {
    std::string s;
    for (char c = static_cast<char>(byte()); c != '\n'; c = static_cast<char>(byte())) s += c;
    return s;
  }
  c10::IValue pop() {
    SCORCH_CHECK(!stack_.empty(), "{}: malformed pickle (stack underflow)", path_);
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  size_t pop_mark() {
    SCORCH_CHECK(!marks_.empty(), "{}: malformed pickle (no MARK)", path_);
    size_t m = marks_.back();
    marks_.pop_back();
    return m;
  }
  c10::IValue memo(uint32_t i) {
    auto it = memo_.find(i);
    SCORCH_CHECK(it != memo_.end(), "{}: malformed pickle (memo {} unset)", path_, i);
    return it->second;
  }
  // The nesting depth of a value: 0 for a leaf, 1 for an empty container.
  int depth_of(const c10::IValue& v) const {
    if (!is_container(v)) return 0;
    auto it = nodes_.find(v.internalToPointer());
    return it == nodes_.end() ? 1 : it->second.depth;
  }
  // Records that `child` now sits inside `parent` (a container on the stack or a new tuple):
  // the parent's depth grows, and the child may no longer be modified.
  void adopt(const c10::IValue& parent, const c10::IValue& child) {
    if (!is_container(child)) return;
    const int depth = depth_of(child) + 1;
    auto& node = node_of(parent);
    node.depth = std::max(node.depth, depth);
    SCORCH_CHECK(node.depth <= kMaxDepth, "{}: the pickle nests containers more than {} deep{}", path_, kMaxDepth,
                 near_key());
    node_of(child).sealed = true;
  }
  struct Node {
    c10::IValue keep;     // holds the container, so its address names it until the end
    int depth = 1;        // 1 + the deepest child's depth
    bool sealed = false;  // placed inside another container: no longer modified
  };
  Node& node_of(const c10::IValue& v) {
    auto& node = nodes_[v.internalToPointer()];
    if (node.keep.isNone()) node.keep = v;
    return node;
  }
  // The container at stack_[i], checked to be of the kind an opcode modifies and still open.
  const c10::IValue& open_container(size_t i, bool list) {
    SCORCH_CHECK(i < stack_.size() && (list ? stack_[i].isList() : stack_[i].isGenericDict()),
                 "{}: malformed pickle ({})", path_, list ? "append to a non-list" : "setitem on a non-dict");
    auto it = nodes_.find(stack_[i].internalToPointer());
    SCORCH_CHECK(it == nodes_.end() || !it->second.sealed,
                 "{}: malformed pickle: a container is modified after being placed inside another (a cyclic or "
                 "hand-made pickle; torch.save does not write these){}",
                 path_, near_key());
    return stack_[i];
  }
  void append(size_t at, const c10::IValue& v) {
    const auto& l = open_container(at, true);
    SCORCH_CHECK(!is_container(v) || v.internalToPointer() != l.internalToPointer(),
                 "{}: malformed pickle: a list contains itself{}", path_, near_key());
    adopt(l, v);
    l.toList().push_back(v);
  }
  void set_item(size_t at, const c10::IValue& k, const c10::IValue& v) {
    const auto& d = open_container(at, false);
    for (const auto* x : {&k, &v})
      SCORCH_CHECK(!is_container(*x) || x->internalToPointer() != d.internalToPointer(),
                   "{}: malformed pickle: a dict contains itself{}", path_, near_key());
    SCORCH_CHECK(!k.isList() && !k.isGenericDict() && !k.isTensor(), "{}: malformed pickle: a dict key is a {}{}",
                 path_, k.tagKind(), near_key());
    adopt(d, k);
    adopt(d, v);
    d.toGenericDict().insert_or_assign(k, v);
  }
  // Moves stack_[from:] into the list at stack_[at] (LIST, APPENDS) or, as key/value pairs,
  // the dict at stack_[at] (DICT, SETITEMS).
  void append_from(size_t at, size_t from) {
    for (size_t i = from; i < stack_.size(); ++i) append(at, stack_[i]);
    stack_.resize(from);
  }
  void set_items_from(size_t at, size_t from) {
    SCORCH_CHECK((stack_.size() - from) % 2 == 0, "{}: malformed pickle (a key without a value)", path_);
    for (size_t i = from; i + 1 < stack_.size(); i += 2) set_item(at, stack_[i], stack_[i + 1]);
    stack_.resize(from);
  }
  static c10::impl::GenericDict new_dict() { return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get()); }
  void tuple(size_t n) {
    SCORCH_CHECK(stack_.size() >= n, "{}: malformed pickle (tuple)", path_);
    std::vector<c10::IValue> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    c10::IValue t = c10::ivalue::Tuple::create(std::move(items));
    for (const auto& x : t.toTupleRef().elements()) adopt(t, x);
    stack_.push_back(std::move(t));
  }
  // ", near key 'K'" for the nearest dict key (a string) below the top of the stack: the
  // key whose value is being built when a tensor record or a nesting bound fails.
  std::string near_key() const {
    for (auto it = stack_.rbegin(); it != stack_.rend(); ++it)
      if (it->isString() && it->toStringRef().rfind("\x01global:", 0) != 0)
        return fmt::format(", near key '{}'", it->toStringRef());
    return "";
  }
  std::string global_name(const c10::IValue& v) {
    if (v.isString() && v.toStringRef().rfind("\x01global:", 0) == 0)
      return globals_.at(std::stoul(v.toStringRef().substr(8))).name;
    SCORCH_THROW("{}: malformed pickle (call of a non-class)", path_);
  }
  std::vector<c10::IValue> tuple_items(const c10::IValue& v) {
    SCORCH_CHECK(v.isTuple(), "{}: malformed pickle (arguments are not a tuple)", path_);
    return v.toTupleRef().elements().vec();
  }
  std::vector<int64_t> ints(const c10::IValue& v, const char* what) {
    std::vector<int64_t> out;
    for (const auto& x : tuple_items(v)) {
      SCORCH_CHECK(x.isInt() && x.toInt() >= 0, "{}: a tensor's {} holds {} (not a non-negative integer){}", path_,
                   what, x.tagKind() == "Int" ? std::to_string(x.toInt()) : x.tagKind(), near_key());
      out.push_back(x.toInt());
    }
    return out;
  }
  // The tensor of `size`, `stride` and `offset` viewed in `storage`, refused unless every
  // element it addresses lies inside the storage (sizes multiply without overflow).
  torch::Tensor view_of(const torch::Tensor& storage, const c10::IValue& offset_v, const c10::IValue& size_v,
                        const c10::IValue& stride_v) {
    SCORCH_CHECK(offset_v.isInt() && offset_v.toInt() >= 0, "{}: a tensor's storage offset is not a non-negative "
                 "integer{}", path_, near_key());
    const int64_t offset = offset_v.toInt();
    const auto size = ints(size_v, "shape"), stride = ints(stride_v, "strides");
    SCORCH_CHECK(size.size() == stride.size(), "{}: a tensor of shape {} has strides {}{}", path_, join(size),
                 join(stride), near_key());
    // The last element addressed is offset + sum (size_i - 1) * stride_i; none when a size is 0.
    int64_t last = offset, numel = 1;
    bool overflow = false, empty = false;
    for (size_t i = 0; i < size.size(); ++i) {
      if (size[i] == 0) empty = true;
      int64_t span = 0;
      overflow |= __builtin_mul_overflow(size[i] > 0 ? size[i] - 1 : 0, stride[i], &span);
      overflow |= __builtin_add_overflow(last, span, &last);
      overflow |= __builtin_mul_overflow(numel, size[i], &numel);
    }
    SCORCH_CHECK(!overflow && (empty || last < storage.numel()),
                 "{}: a tensor claims shape {} (strides {}, offset {}){}, beyond its storage of {} elements", path_,
                 join(size), join(stride), offset, near_key(), storage.numel());
    return storage.as_strided(size, stride, offset).clone();
  }

  c10::IValue call(const std::string& fn, const c10::IValue& args_v) {
    auto args = tuple_items(args_v);
    if (fn == "collections.OrderedDict" || fn == "builtins.dict") return new_dict();
    if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
      SCORCH_CHECK(args.size() >= 4 && args[0].isTensor(), "{}: malformed tensor record", path_);
      return view_of(args[0].toTensor(), args[1], args[2], args[3]);
    }
    if (fn == "torch.jit._pickle.restore_type_tag" || fn.rfind("torch.jit._pickle.build_", 0) == 0) {
      // LibTorch's pickler wraps typed containers; the value is the first argument.
      SCORCH_CHECK(!args.empty(), "{}: malformed {} record", path_, fn);
      return args[0];
    }
    if (fn == "torch._utils._rebuild_parameter") {
      SCORCH_CHECK(!args.empty() && args[0].isTensor(), "{}: malformed parameter record", path_);
      return args[0];
    }
    SCORCH_THROW("{}: the pickle holds a {} object; only containers, numbers and tensors are read", path_, fn);
  }

  c10::IValue persistent(const c10::IValue& pid) {
    auto f = tuple_items(pid);
    SCORCH_CHECK(f.size() >= 5 && f[0].isString() && f[0].toStringRef() == "storage",
                 "{}: unsupported persistent id in the pickle", path_);
    const auto dtype = storage_dtype(global_name(f[1]), path_);
    SCORCH_CHECK(f[2].isString() && f[4].isInt(), "{}: malformed storage record in the pickle{}", path_, near_key());
    const std::string key = f[2].toStringRef();
    auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;
    const std::string record = prefix_ + key;
    SCORCH_CHECK(zip_.hasRecord(record), "{}: storage record '{}' is missing from the archive", path_, record);
    auto [ptr, nbytes] = zip_.getRecord(record);
    const int64_t elem = static_cast<int64_t>(c10::elementSize(dtype));
    SCORCH_CHECK(nbytes % elem == 0, "{}: storage '{}' has {} bytes, not a multiple of {}", path_, key, nbytes, elem);
    SCORCH_CHECK(f[4].toInt() >= 0 && static_cast<uint64_t>(f[4].toInt()) == nbytes / static_cast<uint64_t>(elem),
                 "{}: storage '{}' claims {} elements of {} bytes, but its archive record '{}' holds {} bytes{}", path_,
                 key, f[4].toInt(), elem, record, nbytes, near_key());
    auto t = torch::empty({static_cast<int64_t>(nbytes) / elem}, torch::TensorOptions().dtype(dtype));
    std::memcpy(t.data_ptr(), ptr.get(), nbytes);
    storages_.emplace(key, t);
    return t;
  }

  const std::string& path_;
  caffe2::serialize::PyTorchStreamReader& zip_;
  std::string prefix_;
  const uint8_t* begin_ = nullptr;
  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
  std::vector<c10::IValue> stack_;
  std::vector<size_t> marks_;
  std::map<uint32_t, c10::IValue> memo_;
  std::vector<Global> globals_;
  std::map<std::string, c10::IValue> storages_;
  std::unordered_map<const void*, Node> nodes_;  // containers built so far, by identity
};

}  // namespace

namespace {

uint64_t le(const std::string& b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b.at(at + static_cast<size_t>(i)));
  return v;
}

// The ZIP central directory of `path` (ZIP64 too): every member must be stored (method 0),
// as torch.save writes them. Reads only the directory, never a member.
void check_members_stored(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  SCORCH_CHECK(in, "cannot open '{}': {}", path, std::strerror(errno));
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  auto read_at = [&](uint64_t off, uint64_t n) {
    SCORCH_CHECK(off <= size && n <= size - off, "{}: the ZIP directory points beyond the file ({} bytes at {}, file "
                 "of {}): a damaged or forged archive", path, n, off, size);
    std::string b(n, '\0');
    in.seekg(static_cast<std::streamoff>(off));
    in.read(b.data(), static_cast<std::streamsize>(n));
    SCORCH_CHECK(in, "{}: read error", path);
    return b;
  };
  const uint64_t tail_n = std::min<uint64_t>(size, 22 + 65535 + 20);
  const std::string tail = read_at(size - tail_n, tail_n);
  size_t eocd = std::string::npos;
  for (size_t i = tail.size() >= 22 ? tail.size() - 22 + 1 : 0; i-- > 0;) {
    if (le(tail, i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  SCORCH_CHECK(eocd != std::string::npos, "{}: not a ZIP archive (no end-of-central-directory record): not a torch.save "
               "file", path);
  uint64_t entries = le(tail, eocd + 10, 2), cd_size = le(tail, eocd + 12, 4), cd_off = le(tail, eocd + 16, 4);
  if ((entries == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) && eocd >= 20 &&
      le(tail, eocd - 20, 4) == 0x07064b50) {
    const std::string z64 = read_at(le(tail, eocd - 20 + 8, 8), 56);
    SCORCH_CHECK(le(z64, 0, 4) == 0x06064b50, "{}: damaged ZIP64 end record", path);
    entries = le(z64, 32, 8);
    cd_size = le(z64, 40, 8);
    cd_off = le(z64, 48, 8);
  }
  SCORCH_CHECK(cd_size <= (uint64_t{1} << 28), "{}: a ZIP directory of {} bytes: a damaged or forged archive", path,
               cd_size);
  const std::string cd = read_at(cd_off, cd_size);
  size_t p = 0;
  for (uint64_t e = 0; e < entries; ++e) {
    SCORCH_CHECK(p + 46 <= cd.size() && le(cd, p, 4) == 0x02014b50, "{}: damaged ZIP central directory (entry {})", path,
                 e);
    const uint64_t method = le(cd, p + 10, 2), csize = le(cd, p + 20, 4), usize = le(cd, p + 24, 4);
    const size_t nlen = le(cd, p + 28, 2), xlen = le(cd, p + 30, 2), clen = le(cd, p + 32, 2);
    SCORCH_CHECK(p + 46 + nlen <= cd.size(), "{}: damaged ZIP central directory (entry {})", path, e);
    const std::string name = cd.substr(p + 46, nlen);
    SCORCH_CHECK(method == 0, "{}: archive member '{}' is compressed (ZIP method {}, {} bytes claimed from {}{}): "
                 "torch.save never compresses, so this is not a torch.save file as written; refused before inflating "
                 "anything", path, name, method, usize == 0xffffffffu ? std::string("ZIP64 sizes") : std::to_string(usize),
                 csize == 0xffffffffu ? std::string("?") : std::to_string(csize), "");
    p += 46 + nlen + xlen + clen;
  }
}

}  // namespace

c10::IValue load_torch_zip(const std::string& path) {
  check_members_stored(path);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    SCORCH_THROW("cannot open '{}' as a torch.save zip archive: {}", path, e.what_without_backtrace());
  }
  SCORCH_CHECK(zip->hasRecord("data.pkl"), "{}: no data.pkl in the archive (not written by torch.save?)", path);
  auto [ptr, n] = zip->getRecord("data.pkl");
  Unpickler u(path, *zip, "data/");
  return u.run(static_cast<const uint8_t*>(ptr.get()), n);
}

void save_torch_file(const std::string& path, const c10::IValue& root) {
  // torch::pickle_save's own steps (LibTorch's Pickler, then its zip writer), but with the
  // containers untagged: a type tag (torch.jit._pickle.restore_type_tag) is a global that
  // torch.load(weights_only=True), the default since torch 2.6, refuses.
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char* b, size_t n) { pickle.insert(pickle.end(), b, b + n); }, nullptr,
                              nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(root);
  pickler.stop();
  std::vector<char> bytes;
  {
    caffe2::serialize::PyTorchStreamWriter zip([&](const void* b, size_t n) {
      bytes.insert(bytes.end(), static_cast<const char*>(b), static_cast<const char*>(b) + n);
      return n;
    });
    torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(), zip);
    zip.writeEndOfFile();
  }
  write_file_atomically(path, [&](const std::string& tmp) { write_bytes(tmp, bytes.data(), bytes.size()); });
}

}  // namespace scorch::io
