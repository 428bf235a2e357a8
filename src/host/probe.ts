// The host probe (probeHost) lands here.
export {};
