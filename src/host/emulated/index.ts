// The emulated virtualization host (EmulatedHost) lands here.
export {};
