// Owned by the kernel area; its public exports go here.
export {};
