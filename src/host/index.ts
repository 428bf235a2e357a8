// Owned by the host area; its public exports go here.
export {};
