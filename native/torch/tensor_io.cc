#include "tensor_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace cclip {

at::ScalarType scalar_type_of(const std::string& dtype, const std::string& tensor) {
  if (dtype == "F32") return at::kFloat;
  if (dtype == "F16") return at::kHalf;
  if (dtype == "BF16") return at::kBFloat16;
  if (dtype == "F64") return at::kDouble;
  throw std::invalid_argument("tensor " + tensor + " has dtype " + dtype + "; the torch backend reads F32, F16, BF16 and F64");
}

TensorReader::~TensorReader() {
  for (auto& kv : fds_) ::close(kv.second);
}

int TensorReader::fd_of(const std::string& file) {
  auto it = fds_.find(file);
  if (it != fds_.end()) return it->second;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + file + ": " + std::strerror(errno));
  fds_[file] = fd;
  return fd;
}

static void pread_all(int fd, void* dst, int64_t n, int64_t offset, const std::string& file) {
  char* p = static_cast<char*>(dst);
  const int64_t end = offset + n;
  while (n > 0) {
    ssize_t r = ::pread(fd, p, static_cast<size_t>(std::min<int64_t>(n, int64_t(1) << 30)), offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot read " + file + " at byte " + std::to_string(offset) + ": " + std::strerror(errno));
    }
    if (r == 0) throw std::runtime_error(file + " ends before byte " + std::to_string(end) + " (truncated?)");
    p += r;
    n -= r;
    offset += r;
  }
}

at::Tensor TensorReader::read(const TensorSpec& s, const at::Device& device) {
  const at::ScalarType type = scalar_type_of(s.dtype, s.name);
  const int64_t item = static_cast<int64_t>(c10::elementSize(type));
  if (s.strides.size() != s.shape.size()) throw std::invalid_argument("tensor " + s.name + ": strides and shape differ in rank");
  // Elements spanned from element [0...] to the last one, and whether the layout is row-major contiguous.
  int64_t numel = 1, span = 1, expect = 1;
  bool contiguous = true;
  for (int64_t i = static_cast<int64_t>(s.shape.size()) - 1; i >= 0; i--) {
    const int64_t d = s.shape[i], st = s.strides[i];
    if (d < 0 || st < 0) throw std::invalid_argument("tensor " + s.name + " has a negative size or stride");
    if (d != 1 && st != expect) contiguous = false;
    numel *= d;
    span += (d - 1) * st;
    expect *= d;
  }
  if (numel == 0) return at::empty(s.shape, at::TensorOptions().dtype(type).device(device));
  if (s.offset < 0 || s.byte_length < span * item) {
    throw std::invalid_argument("tensor " + s.name + ": " + std::to_string(s.byte_length) + " bytes cannot hold its " + std::to_string(span) + " elements");
  }
  const int fd = fd_of(s.file);
  if (contiguous) {
    const bool staged = device.is_cuda();
    at::Tensor host = at::empty(s.shape, at::TensorOptions().dtype(type).pinned_memory(staged));
    pread_all(fd, host.data_ptr(), numel * item, s.offset, s.file);
    return staged ? host.to(at::TensorOptions().device(device), /*non_blocking=*/true) : host;
  }
  // A strided view (torch.save of a slice): read the span, then gather on the host.
  at::Tensor flat = at::empty({span}, at::TensorOptions().dtype(type));
  pread_all(fd, flat.data_ptr(), span * item, s.offset, s.file);
  at::Tensor host = flat.as_strided(s.shape, s.strides).contiguous();
  return device.is_cuda() ? host.to(device) : host;
}

}  // namespace cclip
