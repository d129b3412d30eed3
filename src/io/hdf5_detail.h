// Private to io/hdf5.cpp and io/hdf5_data.cpp: what both halves of the HDF5 wrappers share.
#pragma once

namespace scorch::h5::detail {

// HDF5 would print its error stack to stderr; scorch reports the innermost message in its
// own error instead. The thread-safe library keeps that setting per thread, so every entry
// point calls this for the calling thread (a checkpoint writer thread included).
void quiet_this_thread();

}  // namespace scorch::h5::detail
