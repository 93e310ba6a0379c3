//! Unit tests of kernel-name handling (`names.rs`).

use super::*;

#[test]
fn demangles_cxx_names_with_parameters() {
    assert_eq!(
        demangle("_Z10vector_addPfPKfi").as_deref(),
        Some("vector_add(float*, float const*, int)")
    );
    assert_eq!(
        demangle("_ZN2at6native4gemmILi4EEEvPf").as_deref(),
        Some("void at::native::gemm<4>(float*)")
    );
    assert_eq!(demangle("plain_c_kernel"), None);
    assert_eq!(demangle("_Z"), None);
    // A name cut in the middle does not demangle: it is shown raw.
    assert_eq!(demangle("_ZN2at6native4ge"), None);
}

#[test]
fn name_text_stops_at_nul_or_marks_the_cut() {
    let mut buf = [0u8; CUDA_NAME_MAX];
    buf[..3].copy_from_slice(b"abc");
    assert_eq!(name_text(&buf), ("abc".to_string(), false));
    let full = [b'x'; CUDA_NAME_MAX];
    let (text, cut) = name_text(&full);
    assert_eq!((text.len(), cut), (CUDA_NAME_MAX, true));
    let mut bad = [0u8; CUDA_NAME_MAX];
    bad[..2].copy_from_slice(&[0xff, b'k']);
    assert_eq!(name_text(&bad).0, "\u{fffd}k");
}

#[test]
fn short_names_drop_return_type_parameters_and_template_arguments() {
    assert_eq!(
        short_name(
            "void at::native::vectorized_elementwise_kernel<4, at::native::Foo<float>>(int, Bar)"
        ),
        "at::native::vectorized_elementwise_kernel<…>"
    );
    assert_eq!(
        short_name("vector_add(float*, float const*, int)"),
        "vector_add"
    );
    assert_eq!(short_name("plain"), "plain");
    assert_eq!(short_name("unresolved@0xdead"), "unresolved@0xdead");
    let long = "k".repeat(100);
    assert_eq!(short_name(&long).chars().count(), 48);
    assert!(short_name(&long).ends_with('…'));
    // Nothing before the parameters: the whole name, shortened.
    assert_eq!(short_name("(anonymous)::k()"), "(anonymous)::k()");
}

#[test]
fn interning_reuses_ids() {
    let mut n = Names::default();
    let a = n.intern("_Z1fv", false);
    assert_eq!(n.intern("_Z1fv", false), a);
    assert_ne!(n.intern("_Z1fv", true), a);
    assert_eq!(n.get(a).display, "f()");
    let u = n.intern_unresolved(0x10);
    assert_eq!(n.intern_unresolved(0x10), u);
    assert!(n.get(u).unresolved);
    // A real name that reads like a placeholder stays a real name.
    let real = n.intern("unresolved@0x10", false);
    assert_ne!(real, u);
    assert!(!n.get(real).unresolved);
    assert_eq!(decode_name_event(&[0u8; 10]).map(|e| e.api), None);
}
