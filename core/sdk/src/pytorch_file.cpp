#include "ardkit/pytorch_file.hpp"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <unordered_map>

#include "ardkit/error.hpp"
#include "ardkit/file.hpp"
#include "ardkit/text.hpp"

namespace fs = std::filesystem;

namespace ardkit {
namespace {

// Thrown inside the reader; turned into one runtime error naming the file.
struct Malformed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A tensor's bytes: one storage may back several tensors (views, tied weights).
struct Storage {
  torch::ScalarType dtype = torch::kFloat;
  int64_t numel = 0;
  torch::Tensor data;  // 1-D, `numel` elements of `dtype`, filled once the bytes are read
};

// The Python values torch.save writes. Containers are shared, as pickle's memo shares them.
struct Object;
using Ref = std::shared_ptr<Object>;

struct Object {
  enum class Kind {
    none,
    boolean,
    integer,
    real,
    string,
    list,
    tuple,
    dict,
    global,
    storage,
    tensor,
    other
  };
  Kind kind = Kind::none;
  int64_t integer = 0;
  double real = 0;
  std::string text;  // string; "module.name" of a global; type of an `other`
  std::vector<Ref> items;
  std::vector<std::pair<Ref, Ref>> entries;
  std::shared_ptr<Storage> storage;  // storage, tensor
  int64_t offset = 0;
  std::vector<int64_t> sizes, strides;
  torch::Tensor tensor;  // set by materialise()
};

Ref make(Object::Kind kind) {
  auto o = std::make_shared<Object>();
  o->kind = kind;
  return o;
}
Ref make_integer(int64_t v) {
  auto o = make(Object::Kind::integer);
  o->integer = v;
  return o;
}
Ref make_text(Object::Kind kind, std::string text) {
  auto o = make(kind);
  o->text = std::move(text);
  return o;
}

torch::ScalarType storage_dtype(const std::string& global) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"torch.FloatStorage", torch::kFloat},  {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},    {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},    {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort},  {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},    {"torch.BoolStorage", torch::kBool},
      {"torch.UntypedStorage", torch::kByte},
  };
  const auto it = types.find(global);
  if (it == types.end())
    throw Malformed("unsupported storage type " + global);
  return it->second;
}

std::vector<int64_t> int_tuple(const Ref& o, const char* what) {
  if (o->kind != Object::Kind::tuple && o->kind != Object::Kind::list)
    throw Malformed(std::string("tensor ") + what + " is not a tuple");
  std::vector<int64_t> out;
  for (const auto& item : o->items) {
    if (item->kind != Object::Kind::integer)
      throw Malformed(std::string("tensor ") + what + " holds a non-integer");
    out.push_back(item->integer);
  }
  return out;
}

// Called for every persistent id (a storage reference); returns the storage object.
using PersistentLoader = std::function<Ref(const Ref& pid)>;

// Interprets one pickle (protocols 0-4, the opcodes Python's pickler emits) up to its STOP.
// Calls are not executed: the few callables torch.save uses are recognised by name, anything else
// becomes an opaque object, so a checkpoint's extra entries (numpy scalars, argparse namespaces)
// never stop us from reading its tensors.
class PickleMachine {
 public:
  PickleMachine(const std::string& bytes, size_t position, PersistentLoader loader)
      : bytes_(bytes), pos_(position), loader_(std::move(loader)) {}

  Ref run() {
    for (;;) {
      const size_t at = pos_;
      const uint8_t op = u8();
      try {
        if (step(op))
          return pop();
      } catch (const Malformed& e) {
        throw Malformed(fmt::format("{} (opcode 0x{:02x} at byte {})", e.what(), op, at));
      }
    }
  }
  size_t position() const {
    return pos_;
  }
  const std::vector<Ref>& tensors() const {
    return tensors_;
  }

 private:
  // The opcode dispatch table: one case per opcode, each a few lines; true at STOP.
  bool step(uint8_t op) {
    using K = Object::Kind;
    switch (op) {
      case 0x80:
        u8();
        break;  // PROTO
      case 0x95:
        take(8);
        break;  // FRAME: a length hint only
      case '.':
        return true;  // STOP
      case '(':
        marks_.push_back(stack_.size());
        break;
      case '0':
        pop();
        break;
      case '1':
        pop_mark();
        break;
      case '2':
        push(top());
        break;
      case 'N':
        push(make(K::none));
        break;
      case 0x88:
        push(make_bool(true));
        break;
      case 0x89:
        push(make_bool(false));
        break;
      case 'I': {
        const std::string line = read_line();
        if (line == "00" || line == "01")
          push(make_bool(line == "01"));
        else
          push(make_integer(parse_integer(line)));
      } break;
      case 'J':
        push(make_integer(static_cast<int32_t>(little_endian(4))));
        break;
      case 'K':
        push(make_integer(u8()));
        break;
      case 'M':
        push(make_integer(static_cast<int64_t>(little_endian(2))));
        break;
      case 'L': {
        std::string line = read_line();
        if (!line.empty() && line.back() == 'L')
          line.pop_back();
        push(make_integer(parse_integer(line)));
      } break;
      case 0x8a:
        push(long_integer(u8()));
        break;
      case 0x8b:
        push(long_integer(little_endian(4)));
        break;
      case 'F':
        push(make_real(std::strtod(read_line().c_str(), nullptr)));
        break;
      case 'G': {
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i)
          bits = (bits << 8) | u8();  // big-endian
        double v;
        std::memcpy(&v, &bits, sizeof v);
        push(make_real(v));
      } break;
      case 'X':
        push(make_text(K::string, take(little_endian(4))));
        break;
      case 0x8c:
        push(make_text(K::string, take(u8())));
        break;
      case 0x8d:
        push(make_text(K::string, take(little_endian(8))));
        break;
      case 'V':
        push(make_text(K::string, read_line()));
        break;
      case 'T':
        push(make_text(K::string, take(little_endian(4))));
        break;
      case 'U':
        push(make_text(K::string, take(u8())));
        break;
      case 'S':
        push(make_text(K::string, unquote(read_line())));
        break;
      case 'B':
        push(make_text(K::other, take(little_endian(4))));
        break;  // bytes
      case 'C':
        push(make_text(K::other, take(u8())));
        break;
      case 0x8e:
        push(make_text(K::other, take(little_endian(8))));
        break;
      case ')':
        push(make(K::tuple));
        break;
      case 't':
        push(sequence_from_mark(K::tuple));
        break;
      case 0x85:
        push(tuple_of(1));
        break;
      case 0x86:
        push(tuple_of(2));
        break;
      case 0x87:
        push(tuple_of(3));
        break;
      case ']':
        push(make(K::list));
        break;
      case 'l':
        push(sequence_from_mark(K::list));
        break;
      case 0x8f:
        push(make(K::list));
        break;  // EMPTY_SET, kept as a list
      case 0x91:
        push(sequence_from_mark(K::list));
        break;  // FROZENSET
      case 'a': {
        auto value = pop();
        expect(top(), K::list, "APPEND")->items.push_back(value);
      } break;
      case 'e':
      case 0x90: {  // APPENDS, ADDITEMS
        auto items = pop_mark();
        auto& list = expect(top(), K::list, "APPENDS")->items;
        list.insert(list.end(), items.begin(), items.end());
      } break;
      case '}':
        push(make(K::dict));
        break;
      case 'd': {
        auto dict = make(K::dict);
        add_entries(dict, pop_mark());
        push(dict);
      } break;
      case 's': {
        auto value = pop();
        auto key = pop();
        add_entries(expect(top(), K::dict, "SETITEM"), {key, value});
      } break;
      case 'u': {
        auto items = pop_mark();
        add_entries(expect(top(), K::dict, "SETITEMS"), items);
      } break;
      case 'c': {
        std::string module = read_line();
        push(make_text(K::global, module + "." + read_line()));
      } break;
      case 0x93: {  // STACK_GLOBAL
        auto name = pop();
        auto module = pop();
        push(make_text(K::global, module->text + "." + name->text));
      } break;
      case 'R':
      case 0x81: {  // REDUCE, NEWOBJ
        auto args = pop();
        auto callable = pop();
        push(call(callable, args));
      } break;
      case 0x92: {  // NEWOBJ_EX
        pop();
        auto args = pop();
        auto callable = pop();
        push(call(callable, args));
      } break;
      case 'b':
        pop();
        break;  // BUILD: instance state (e.g. a state dict's _metadata), unused
      case 'Q':
        push(loader_(pop()));
        break;
      case 'P':
        push(loader_(make_text(K::string, read_line())));
        break;
      case 'h':
        push(memo_get(u8()));
        break;
      case 'j':
        push(memo_get(little_endian(4)));
        break;
      case 'g':
        push(memo_get(parse_integer(read_line())));
        break;
      case 'q':
        memo_[u8()] = top();
        break;
      case 'r':
        memo_[little_endian(4)] = top();
        break;
      case 'p':
        memo_[parse_integer(read_line())] = top();
        break;
      case 0x94:
        memo_[memo_.size()] = top();
        break;  // MEMOIZE
      default:
        throw Malformed("unsupported pickle opcode");
    }
    return false;
  }

  // The callables torch.save writes, by name.
  Ref call(const Ref& callable, const Ref& args) {
    using K = Object::Kind;
    const std::string& name = callable->kind == K::global ? callable->text : std::string();
    const auto& a = args->items;
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (a.size() < 4 || a[0]->kind != K::storage || a[1]->kind != K::integer)
        throw Malformed("malformed tensor record");
      auto t = make(K::tensor);
      t->storage = a[0]->storage;
      t->offset = a[1]->integer;
      t->sizes = int_tuple(a[2], "size");
      t->strides = int_tuple(a[3], "stride");
      if (t->sizes.size() != t->strides.size())
        throw Malformed("tensor size and stride differ in length");
      tensors_.push_back(t);
      return t;
    }
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != K::tensor)
        throw Malformed("malformed parameter record");
      return a[0];
    }
    if (name == "collections.OrderedDict" || name == "builtins.dict") {
      auto dict = make(K::dict);
      if (!a.empty() && a[0]->kind == K::list)  // OrderedDict([(k, v), ...])
        for (const auto& pair : a[0]->items)
          if (pair->items.size() == 2)
            add_entries(dict, {pair->items[0], pair->items[1]});
      return dict;
    }
    if (name == "torch.device" && !a.empty())
      return a[0];
    // LibTorch's pickler (torch::pickle_save, what `ardkit export` writes) tags typed dicts:
    // restore_type_tag(value, "Dict[str, Tensor]") is the value itself.
    if (name == "torch.jit._pickle.restore_type_tag" && !a.empty())
      return a[0];
    if (name == "copyreg._reconstructor" && !a.empty() && a[0]->kind == K::global)
      return make_text(K::other, a[0]->text);  // a pickled instance: keep its class name
    return make_text(K::other, name.empty() ? "call" : name);
  }

  void add_entries(const Ref& dict, const std::vector<Ref>& items) {
    if (items.size() % 2 != 0)
      throw Malformed("odd number of dict items");
    for (size_t i = 0; i < items.size(); i += 2)
      dict->entries.emplace_back(items[i], items[i + 1]);
  }

  Ref sequence_from_mark(Object::Kind kind) {
    auto o = make(kind);
    o->items = pop_mark();
    return o;
  }
  Ref tuple_of(size_t n) {
    if (stack_.size() < n + floor())
      throw Malformed("stack underflow");
    auto o = make(Object::Kind::tuple);
    o->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return o;
  }
  Ref make_bool(bool v) {
    auto o = make(Object::Kind::boolean);
    o->integer = v;
    return o;
  }
  Ref make_real(double v) {
    auto o = make(Object::Kind::real);
    o->real = v;
    return o;
  }
  // LONG1/LONG4: little-endian two's complement of n bytes. Python's pickler only writes these
  // for values outside int32, so more than 8 bytes is a big number we never need (torch's
  // legacy magic number): kept as an opaque value holding its bytes.
  Ref long_integer(uint64_t n) {
    const std::string raw = take(n);
    if (n > 8)
      return make_text(Object::Kind::other, raw);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v |= uint64_t(uint8_t(raw[i])) << (8 * i);
    if (n > 0 && n < 8 && (uint8_t(raw[n - 1]) & 0x80))
      v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return make_integer(static_cast<int64_t>(v));
  }
  static Ref expect(const Ref& o, Object::Kind kind, const char* op) {
    if (o->kind != kind)
      throw Malformed(std::string(op) + " on a value of the wrong type");
    return o;
  }
  Ref memo_get(uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end())
      throw Malformed("reference to an unknown memo entry");
    return it->second;
  }

  size_t floor() const {
    return marks_.empty() ? 0 : marks_.back();
  }
  void push(Ref o) {
    stack_.push_back(std::move(o));
  }
  Ref top() const {
    if (stack_.size() <= floor())
      throw Malformed("stack underflow");
    return stack_.back();
  }
  Ref pop() {
    Ref o = top();
    stack_.pop_back();
    return o;
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty())
      throw Malformed("no MARK on the stack");
    const size_t start = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(start), stack_.end());
    stack_.resize(start);
    return items;
  }

  uint8_t u8() {
    if (pos_ >= bytes_.size())
      throw Malformed("the data ends in the middle of a pickle (truncated file?)");
    return static_cast<uint8_t>(bytes_[pos_++]);
  }
  uint64_t little_endian(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i)
      v |= uint64_t(u8()) << (8 * i);
    return v;
  }
  std::string take(uint64_t n) {
    if (n > bytes_.size() - pos_)
      throw Malformed("the data ends in the middle of a pickle (truncated file?)");
    std::string out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  std::string read_line() {
    const size_t end = bytes_.find('\n', pos_);
    if (end == std::string::npos)
      throw Malformed("the data ends in the middle of a pickle (truncated file?)");
    std::string out = bytes_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  static int64_t parse_integer(const std::string& text) {
    try {
      return std::stoll(text);
    } catch (const std::exception&) {
      throw Malformed("bad integer '" + text + "'");
    }
  }
  static std::string unquote(const std::string& s) {
    if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"') && s.back() == s.front())
      return s.substr(1, s.size() - 2);
    return s;
  }

  const std::string& bytes_;
  size_t pos_;
  PersistentLoader loader_;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Ref> memo_;
  std::vector<Ref> tensors_;
};

// The storage a persistent id names: ('storage', <type global>, key, location, numel[, view]).
Ref storage_reference(const Ref& pid, std::map<std::string, std::shared_ptr<Storage>>& storages) {
  using K = Object::Kind;
  const auto& a = pid->items;
  if (pid->kind != K::tuple || a.size() < 5 || a[0]->kind != K::string || a[0]->text != "storage")
    throw Malformed("unknown persistent id (not a tensor storage)");
  if (a[1]->kind != K::global || a[2]->kind != K::string || a[4]->kind != K::integer)
    throw Malformed("malformed storage reference");
  if (a.size() > 5 && a[5]->kind != K::none)
    throw Malformed(
        "the file uses storage views of the pre-1.0 format; load and re-save it with a recent "
        "PyTorch (torch.save(torch.load(f), f))");
  auto& storage = storages[a[2]->text];
  if (!storage) {
    storage = std::make_shared<Storage>();
    storage->dtype = storage_dtype(a[1]->text);
    storage->numel = a[4]->integer;
  }
  auto o = make(K::storage);
  o->storage = storage;
  return o;
}

// Builds each tensor as a copy of its view of the storage bytes.
void materialise(const std::vector<Ref>& tensors) {
  for (const auto& t : tensors) {
    const Storage& s = *t->storage;
    if (!s.data.defined())
      throw Malformed("a tensor refers to storage whose data is missing");
    int64_t extent = t->offset;
    for (size_t d = 0; d < t->sizes.size(); ++d) {
      if (t->sizes[d] < 0 || t->strides[d] < 0)
        throw Malformed("negative tensor size or stride");
      if (t->sizes[d] == 0) {
        extent = -1;
        break;
      }
      extent += (t->sizes[d] - 1) * t->strides[d];
    }
    if (extent >= s.numel)
      throw Malformed("a tensor reaches past the end of its storage");
    t->tensor = s.data.as_strided(t->sizes, t->strides, t->offset).clone();
  }
}

torch::Tensor storage_tensor(std::shared_ptr<at::DataPtr> owner, size_t bytes,
                             const Storage& storage, const std::string& what) {
  const size_t expected = static_cast<size_t>(storage.numel) * c10::elementSize(storage.dtype);
  if (bytes != expected)
    throw Malformed(fmt::format("{} holds {} bytes, the tensor needs {} (truncated file?)", what,
                                bytes, expected));
  void* data = owner->get();
  return torch::from_blob(
      data, {storage.numel}, [owner](void*) mutable { owner.reset(); },
      torch::TensorOptions().dtype(storage.dtype));
}

// The first `n` bytes of a file (fewer if it is shorter): enough to tell the formats apart
// without reading a large zip twice.
std::string read_head(const fs::path& file, size_t n) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw_runtime_error(file.string() + ": cannot open: " + std::strerror(errno));
  std::string head(n, '\0');
  in.read(head.data(), static_cast<std::streamsize>(n));
  head.resize(static_cast<size_t>(in.gcount()));
  return head;
}

std::string read_whole_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw_runtime_error(file.string() + ": cannot open: " + std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool is_zip(const std::string& head) {
  return head.rfind("PK\x03\x04", 0) == 0;
}

// torch.save's zip format: archive/data.pkl plus one record per storage under archive/data/.
Ref read_zip(const fs::path& file) {
  caffe2::serialize::PyTorchStreamReader reader(file.string());
  if (!reader.hasRecord("data.pkl"))
    throw Malformed(
        "zip archive without data.pkl: this is not a torch.save file (a TorchScript model? use "
        "the torchscript model plugin)");
  auto [pickle_ptr, pickle_size] = reader.getRecord("data.pkl");
  const std::string pickle(static_cast<const char*>(pickle_ptr.get()), pickle_size);
  std::map<std::string, std::shared_ptr<Storage>> storages;
  PickleMachine machine(pickle, 0, [&](const Ref& pid) {
    Ref o = storage_reference(pid, storages);
    Storage& s = *o->storage;
    if (!s.data.defined()) {
      const std::string record = "data/" + pid->items[2]->text;
      if (!reader.hasRecord(record))
        throw Malformed("storage record " + record + " is missing (truncated file?)");
      auto [ptr, size] = reader.getRecord(record);
      s.data = storage_tensor(std::make_shared<at::DataPtr>(std::move(ptr)), size, s, record);
    }
    return o;
  });
  Ref root = machine.run();
  materialise(machine.tensors());
  return root;
}

// The pre-1.6 format: pickles of the magic number, protocol version and system info, then the
// object (storages as persistent ids), then the sorted storage keys, then each storage's data
// as an int64 element count followed by the raw little-endian elements.
Ref read_legacy(const std::string& bytes) {
  std::map<std::string, std::shared_ptr<Storage>> storages;
  auto no_storage = [](const Ref&) -> Ref { throw Malformed("unexpected storage in the header"); };
  size_t pos = 0;
  const Ref magic = [&] {
    PickleMachine m(bytes, pos, no_storage);
    Ref v = m.run();
    pos = m.position();
    return v;
  }();
  const std::string expected_magic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
  if (magic->kind != Object::Kind::other || magic->text != expected_magic)
    throw Malformed("a pickle, but not one written by torch.save (no torch magic number)");
  for (int header = 0; header < 2; ++header) {  // protocol version, system info
    PickleMachine m(bytes, pos, no_storage);
    m.run();
    pos = m.position();
  }
  PickleMachine main(bytes, pos, [&](const Ref& pid) { return storage_reference(pid, storages); });
  Ref root = main.run();
  pos = main.position();
  PickleMachine keys_machine(bytes, pos, no_storage);
  const Ref keys = keys_machine.run();
  pos = keys_machine.position();
  if (keys->kind != Object::Kind::list)
    throw Malformed("the storage key list is missing");
  for (const auto& key : keys->items) {
    const auto it = storages.find(key->text);
    if (it == storages.end())
      throw Malformed("storage key " + key->text + " is not used by any tensor");
    Storage& s = *it->second;
    if (pos + 8 > bytes.size())
      throw Malformed("storage " + key->text + " is missing (truncated file?)");
    int64_t numel = 0;
    std::memcpy(&numel, bytes.data() + pos, 8);
    pos += 8;
    const size_t size = static_cast<size_t>(numel) * c10::elementSize(s.dtype);
    if (numel != s.numel || size > bytes.size() - pos)
      throw Malformed("storage " + key->text + " is shorter than its tensors (truncated file?)");
    s.data = torch::from_blob(const_cast<char*>(bytes.data()) + pos, {s.numel},
                              torch::TensorOptions().dtype(s.dtype))
                 .clone();
    pos += size;
  }
  materialise(main.tensors());
  return root;
}

bool is_state_dict(const Ref& o) {
  if (o->kind != Object::Kind::dict || o->entries.empty())
    return false;
  for (const auto& [k, v] : o->entries)
    if (k->kind != Object::Kind::string || v->kind != Object::Kind::tensor)
      return false;
  return true;
}

std::string key_list(const Ref& dict) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : dict->entries)
    keys.push_back(k->kind == Object::Kind::string ? k->text : "<non-string>");
  if (keys.size() > 12) {
    const size_t rest = keys.size() - 12;
    keys.resize(12);
    keys.push_back(fmt::format("... {} more", rest));
  }
  return join(keys, ", ");
}

Ref entry(const Ref& dict, const std::string& key) {
  if (dict->kind != Object::Kind::dict)
    return nullptr;
  for (const auto& [k, v] : dict->entries)
    if (k->kind == Object::Kind::string && k->text == key)
      return v;
  return nullptr;
}

}  // namespace

StateDict read_pytorch_state_dict(const fs::path& file, const std::string& key) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    throw_runtime_error(file.string() + ": weights file not found; check the path");
  Ref root;
  try {
    // The zip reader reads records itself; only the legacy format needs the whole file here.
    const std::string head = read_head(file, 4);
    if (is_zip(head))
      root = read_zip(file);
    else if (!head.empty() && static_cast<uint8_t>(head[0]) == 0x80)
      root = read_legacy(read_whole_file(file));
    else
      throw Malformed(
          "neither torch.save's zip format nor its legacy pickle format (an empty, truncated or "
          "foreign file?)");
  } catch (const Malformed& e) {
    throw_runtime_error(
        fmt::format("{}: cannot read PyTorch weights: {}", file.string(), e.what()));
  } catch (const c10::Error& e) {
    throw_runtime_error(fmt::format("{}: cannot read PyTorch weights: {} (corrupt zip archive?)",
                                    file.string(), e.what_without_backtrace()));
  }
  Ref found;
  if (!key.empty()) {
    found = root;
    std::string path;
    for (const auto& part : split(key, '/')) {
      Ref next = entry(found, part);
      if (!next)
        throw_config_error(fmt::format(
            "{}: checkpoint_key '{}': no entry '{}' in {}{}", file.string(), key, part,
            path.empty() ? "the file" : "'" + path + "'",
            found->kind == Object::Kind::dict ? " (it has: " + key_list(found) + ")" : ""));
      path += (path.empty() ? "" : "/") + part;
      found = next;
    }
    if (!is_state_dict(found))
      throw_config_error(fmt::format(
          "{}: checkpoint_key '{}' is not a dict of tensors{}", file.string(), key,
          found->kind == Object::Kind::dict ? " (it has: " + key_list(found) + ")" : ""));
  } else if (is_state_dict(root)) {
    found = root;
  } else {
    for (const char* candidate :
         {"state_dict", "model_state_dict", "model", "net", "student", "network", "params"})
      if (Ref e = entry(root, candidate); e && is_state_dict(e)) {
        found = e;
        break;
      }
    if (!found && root->kind == Object::Kind::other)
      throw_config_error(fmt::format(
          "{}: the file holds a pickled Python object ({}), not a state dict; in PyTorch save "
          "model.state_dict() instead, or trace the model and use the torchscript plugin",
          file.string(), root->text));
    if (!found)
      throw_config_error(fmt::format(
          "{}: no state dict in this file{}; set checkpoint_key to the entry that holds one",
          file.string(),
          root->kind == Object::Kind::dict ? " (top-level keys: " + key_list(root) + ")" : ""));
  }
  StateDict out;
  for (const auto& [k, v] : found->entries)
    out.emplace_back(k->text, v->tensor);
  return out;
}

void write_pytorch_state_dict(const fs::path& file, const StateDict& state) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, tensor] : state)
    dict.insert(name, tensor.detach().to(torch::kCPU).contiguous());
  const std::vector<char> bytes = torch::pickle_save(dict);
  write_file_atomic(file, std::string(bytes.begin(), bytes.end()));
}

bool is_libtorch_archive(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec) || !is_zip(read_head(file, 4)))
    return false;
  try {
    caffe2::serialize::PyTorchStreamReader reader(file.string());
    return reader.hasRecord("constants.pkl") || !reader.hasRecord("data.pkl");
  } catch (const c10::Error&) {
    return false;
  }
}

}  // namespace ardkit
