// Owned by the bench area; its public exports go here.
export {};
