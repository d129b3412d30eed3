// A small pickle virtual machine for the objects torch.save writes for state dicts:
// containers, numbers, strings, and tensors (GLOBAL torch._utils._rebuild_tensor_v2 with a
// persistent-id storage that lives in the zip's data/<key> record).
#include "scorch/io/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <cstring>
#include <map>

#include "scorch/core/error.h"

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
        case 'l': {
          c10::impl::GenericList l(c10::AnyType::get());
          append_from(l, pop_mark());
          stack_.emplace_back(l);
          break;
        }
        case 'd': {
          auto d = new_dict();
          set_items_from(d, pop_mark());
          stack_.emplace_back(d);
          break;
        }
        case 'a': {  // APPEND
          auto v = pop();
          list_at(stack_.size() - 1).push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          const size_t m = pop_mark();
          append_from(list_at(m - 1), m);
          break;
        }
        case 's': {  // SETITEM
          auto v = pop();
          auto k = pop();
          dict_at(stack_.size() - 1).insert_or_assign(k, v);
          break;
        }
        case 'u': {  // SETITEMS
          const size_t m = pop_mark();
          set_items_from(dict_at(m - 1), m);
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
  // Moves stack_[from:] into the list (LIST, APPENDS) or, as key/value pairs, the dict (DICT, SETITEMS).
  void append_from(c10::impl::GenericList l, size_t from) {
    for (size_t i = from; i < stack_.size(); ++i) l.push_back(stack_[i]);
    stack_.resize(from);
  }
  void set_items_from(c10::impl::GenericDict d, size_t from) {
    for (size_t i = from; i + 1 < stack_.size(); i += 2) d.insert_or_assign(stack_[i], stack_[i + 1]);
    stack_.resize(from);
  }
  static c10::impl::GenericDict new_dict() { return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get()); }
  void tuple(size_t n) {
    SCORCH_CHECK(stack_.size() >= n, "{}: malformed pickle (tuple)", path_);
    std::vector<c10::IValue> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    stack_.emplace_back(c10::ivalue::Tuple::create(std::move(items)));
  }
  c10::impl::GenericList list_at(size_t i) {
    SCORCH_CHECK(i < stack_.size() && stack_[i].isList(), "{}: malformed pickle (append to a non-list)", path_);
    return stack_[i].toList();
  }
  c10::impl::GenericDict dict_at(size_t i) {
    SCORCH_CHECK(i < stack_.size() && stack_[i].isGenericDict(), "{}: malformed pickle (setitem on a non-dict)",
                 path_);
    return stack_[i].toGenericDict();
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
  std::vector<int64_t> ints(const c10::IValue& v) {
    std::vector<int64_t> out;
    for (const auto& x : tuple_items(v)) out.push_back(x.toInt());
    return out;
  }

  c10::IValue call(const std::string& fn, const c10::IValue& args_v) {
    auto args = tuple_items(args_v);
    if (fn == "collections.OrderedDict" || fn == "builtins.dict") return new_dict();
    if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
      SCORCH_CHECK(args.size() >= 4 && args[0].isTensor(), "{}: malformed tensor record", path_);
      auto storage = args[0].toTensor();
      auto t = storage.as_strided(ints(args[2]), ints(args[3]), args[1].toInt()).clone();
      return t;
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
    const std::string key = f[2].toStringRef();
    auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;
    const std::string record = prefix_ + key;
    SCORCH_CHECK(zip_.hasRecord(record), "{}: storage record '{}' is missing from the archive", path_, record);
    auto [ptr, nbytes] = zip_.getRecord(record);
    const int64_t elem = static_cast<int64_t>(c10::elementSize(dtype));
    SCORCH_CHECK(nbytes % elem == 0, "{}: storage '{}' has {} bytes, not a multiple of {}", path_, key, nbytes, elem);
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
};

}  // namespace

c10::IValue load_torch_zip(const std::string& path) {
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

}  // namespace scorch::io
