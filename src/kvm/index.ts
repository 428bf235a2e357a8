// Owned by the kvm area; its public exports go here.
export {};
